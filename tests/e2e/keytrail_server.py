"""Starts the real keytrail binary for end-to-end tests and stops it again."""

import json
import os
import signal
import subprocess
import tempfile

import boto3

BIN = os.environ.get("KEYTRAIL_BIN", "target/debug/keytrail")

CONFIG = """
[[credentials]]
access_key_id = "test"
secret_access_key = "test"
account_id = "000000000000"

[[credentials]]
access_key_id = "AKIAE2EUSER000000001"
secret_access_key = "e2e/User+Secret00000000000000000000000000"
account_id = "444455556666"
user_name = "e2e-user"
"""


class KeytrailServer:
    def __init__(self, *extra_args, config_extra=""):
        self.tmp = tempfile.TemporaryDirectory()
        self.data_dir = os.path.join(self.tmp.name, "data")
        self.config = os.path.join(self.tmp.name, "keytrail.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG + config_extra)
        self.extra_args = extra_args
        self.log = open(os.path.join(self.tmp.name, "server.log"), "a")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [BIN, "--config", self.config, "--data-dir", self.data_dir, "serve",
             "--listen", "127.0.0.1:0", *self.extra_args],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = None
        for line in self.proc.stdout:
            if line.startswith("keytrail listening on "):
                self.url = line.strip().split(" ")[-1]
                break
        if self.url is None:
            raise RuntimeError("keytrail did not start: " + open(self.log.name).read())
        self.port = int(self.url.rsplit(":", 1)[1])

    def client(self, service, key="test", secret="test", token=None, region="us-east-1",
               **options):
        """A boto3 client for this server, with the root test credentials unless told."""
        return boto3.session.Session().client(
            service, endpoint_url=self.url, region_name=region,
            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
            **options)

    def cli(self, *args, key="test", secret="test", token=None):
        """Runs the aws CLI against this server: its exit status, JSON output (or None) and
        standard error."""
        out = subprocess.run(["aws", *args, "--output", "json"],
                             env=self.env(key, secret, token=token), capture_output=True,
                             text=True)
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr

    def cli_ok(self, *args, **creds):
        """The JSON output of an aws CLI command that must succeed ({} when it prints none)."""
        code, body, err = self.cli(*args, **creds)
        if code != 0:
            raise AssertionError(f"aws {' '.join(args)} exited with {code}: {err}")
        return body or {}

    def env(self, key="test", secret="test", url=None, token=None):
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("AWS_"):
                del env[name]
        env.update({
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url or self.url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        if token:
            env["AWS_SESSION_TOKEN"] = token
        return env

    def events(self):
        out = subprocess.run([BIN, "--data-dir", self.data_dir, "events", "tail", "-n", "100000"],
                             check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines()]

    def event(self, request_id):
        matches = [e for e in self.events() if e["requestID"] == request_id]
        assert len(matches) == 1, f"one event for {request_id}, found {len(matches)}"
        return matches[0]

    def restart(self):
        """SIGTERM, then start again on the same data directory (on a new port)."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0
        self.proc.stdout.close()
        self.start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.log.close()
        self.tmp.cleanup()
        return code
