"""Side-by-side benchmark: keytrail, the null server (ceiling) and moto_server, under wrk.

Every figure is printed as a ratio against references measured in the same run, so results from
different machines can be compared.
"""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
THREADS = int(os.environ.get("THREADS", "2"))
# Rounds of the three servers, interleaved; figures are each metric's median over the rounds
# (a shared host swings by a quarter between runs of ten seconds).
ROUNDS = max(1, int(os.environ.get("ROUNDS", "1")))
OUT = os.path.join(ROOT, "bench", "out")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not come up")


class Proc:
    def __init__(self, name, argv, ready_url=None, ready_line=None, env=None):
        self.name = name
        self.log = tempfile.TemporaryFile()
        started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env)
        if ready_line:
            for line in self.proc.stdout:
                if ready_line in line:
                    break
        if ready_url:
            wait_http(ready_url)
        self.startup_s = time.monotonic() - started
        time.sleep(1)
        self.idle_rss_mib = rss_kib(self.proc.pid) / 1024

    def peak_rss_mib(self):
        return rss_kib(self.proc.pid, "VmHWM") / 1024

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


QUIET = dict(os.environ, RUST_LOG="warn")


def keytrail_config(directory):
    """A config file in `directory` declaring test/test, the credentials every bench signs with."""
    path = os.path.join(directory, "keytrail.toml")
    with open(path, "w") as f:
        f.write('[[credentials]]\naccess_key_id = "test"\nsecret_access_key = "test"\n'
                'account_id = "000000000000"\n')
    return path


def keytrail_argv(binary, config, data_dir, port, *serve_args):
    """The command line of the keytrail `binary` serving on 127.0.0.1:`port`."""
    return [binary, "--config", config, "--data-dir", data_dir, "serve", "--listen",
            f"127.0.0.1:{port}", *serve_args]


def keytrail_binary(binary=None):
    """`binary`, else $KEYTRAIL_BIN (to bench another build with any script), else the release
    build."""
    return binary or os.environ.get("KEYTRAIL_BIN") or os.path.join(RELEASE, "keytrail")


def start_keytrail(config, data_dir, port, *serve_args, binary=None):
    """keytrail (see `keytrail_binary`) on `port`, once it listens."""
    binary = keytrail_binary(binary)
    return Proc("keytrail", keytrail_argv(binary, config, data_dir, port, *serve_args),
                ready_line="keytrail listening on", env=QUIET)


def start_null(port, binary=None):
    """The null server (the release build unless `binary` is given) on `port`, once it listens."""
    return Proc("null", [binary or os.path.join(RELEASE, "keytrail-null-server"),
                         f"127.0.0.1:{port}"], ready_line="null server listening on", env=QUIET)


def timed(call, repeat=7):
    """The median of `repeat` calls in milliseconds, and the last call's result."""
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 1), result


def wrk_script(method, body, headers):
    lines = [f'wrk.method = "{method}"', f"wrk.body = {json.dumps(body)}"]
    for name, value in headers.items():
        if name.lower() == "host":
            continue
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    return "\n".join(lines) + "\n"


def signed(port, service, body, headers):
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), service, "us-east-1").add_auth(request)
    return wrk_script("POST", body, dict(request.headers.items()))


def sts_request(port, _setup):
    return signed(port, "sts", "Action=GetCallerIdentity&Version=2011-06-15",
                  {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


def kms_request(operation, body):
    def build(port, _setup):
        return signed(port, "kms", json.dumps(body(_setup.get(port, {}))),
                      {"Content-Type": "application/x-amz-json-1.1",
                       "X-Amz-Target": f"TrentService.{operation}"})
    return build


CONTEXT = {"aws:cloudtrail:arn": "arn:aws:cloudtrail:us-east-1:000000000000:trail/bench"}
MESSAGE = b"a digest file to sign, or any other message"
MESSAGE_B64 = __import__("base64").b64encode(MESSAGE).decode()

WORKLOADS = {
    "sts:GetCallerIdentity": sts_request,
    "kms:GenerateDataKey": kms_request(
        "GenerateDataKey",
        lambda s: {"KeyId": s.get("key", "alias/bench"), "KeySpec": "AES_256",
                   "EncryptionContext": CONTEXT}),
    "kms:Decrypt": kms_request(
        "Decrypt",
        lambda s: {"CiphertextBlob": s.get("blob", ""), "EncryptionContext": CONTEXT}),
    "kms:Sign(RSA_2048)": kms_request(
        "Sign",
        lambda s: {"KeyId": s.get("rsa", ""), "Message": MESSAGE_B64,
                   "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
    "kms:Verify(RSA_2048)": kms_request(
        "Verify",
        lambda s: {"KeyId": s.get("rsa", ""), "Message": MESSAGE_B64,
                   "Signature": s.get("rsa_sig", ""), "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
    "kms:Sign(ECC_NIST_P256)": kms_request(
        "Sign",
        lambda s: {"KeyId": s.get("ecc", ""), "Message": MESSAGE_B64,
                   "SigningAlgorithm": "ECDSA_SHA_256"}),
    "kms:Verify(ECC_NIST_P256)": kms_request(
        "Verify",
        lambda s: {"KeyId": s.get("ecc", ""), "Message": MESSAGE_B64,
                   "Signature": s.get("ecc_sig", ""), "SigningAlgorithm": "ECDSA_SHA_256"}),
}


def kms_setup(port):
    """A key and a ciphertext on the server at `port`, made with boto3."""
    import base64
    import boto3
    kms = boto3.session.Session().client(
        "kms", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test")
    key = kms.create_key(Description="bench")["KeyMetadata"]["Arn"]
    blob = kms.generate_data_key(KeyId=key, KeySpec="AES_256",
                                 EncryptionContext=CONTEXT)["CiphertextBlob"]
    setup = {"key": key, "blob": base64.b64encode(blob).decode()}
    for name, spec, algorithm in (("rsa", "RSA_2048", "RSASSA_PSS_SHA_256"),
                                  ("ecc", "ECC_NIST_P256", "ECDSA_SHA_256")):
        try:
            arn = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
            signature = kms.sign(KeyId=arn, Message=MESSAGE,
                                 SigningAlgorithm=algorithm)["Signature"]
            setup[name] = arn
            setup[f"{name}_sig"] = base64.b64encode(signature).decode()
        except Exception as e:  # a peer without the operation shows up as errors in its column
            print(f"setup of {spec} on port {port} failed: {e}", file=sys.stderr)
    return setup


def to_ms(value):
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk_script_file(script):
    """`script` written to a temporary Lua file, whose path the caller removes."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        return f.name


def wrk_argv(port, script_path):
    return ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency",
            "-s", script_path, f"http://127.0.0.1:{port}/"]


def run_wrk(port, script):
    path = wrk_script_file(script)
    try:
        out = subprocess.run(wrk_argv(port, path), check=True, capture_output=True,
                             text=True).stdout
    finally:
        os.unlink(path)
    return parse_wrk(out)


def parse_wrk(out):
    """req/s, p50 and p99 latency, and errors from wrk's report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}


def median_of(runs):
    """Each metric's median over the rounds of one server (errors summed)."""
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs),
            "socket_errors": "; ".join(r["socket_errors"] for r in runs if r["socket_errors"])}


def main():
    names = sys.argv[1:] or ["sts:GetCallerIdentity"]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; known: {list(WORKLOADS)}", file=sys.stderr)
        return 2
    os.makedirs(OUT, exist_ok=True)
    data = tempfile.TemporaryDirectory()
    config = keytrail_config(data.name)
    kt_port, null_port, moto_port = free_port(), free_port(), free_port()
    env = QUIET
    keytrail = start_keytrail(config, os.path.join(data.name, "data"), kt_port)
    null = start_null(null_port)
    moto = Proc("moto", [os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p",
                         str(moto_port)], ready_url=f"http://127.0.0.1:{moto_port}/moto-api/")
    ports = {"null": null_port, "keytrail": kt_port, "moto": moto_port}
    setup = {}
    if any(n.startswith("kms:") for n in names):
        setup = {kt_port: kms_setup(kt_port), moto_port: kms_setup(moto_port)}
    summaries = []
    try:
        for workload in names:
            rounds = {server: [] for server in ("null", "keytrail", "moto")}
            for _ in range(ROUNDS):
                # Sign right before each run: a replayed signature goes stale after 15 minutes.
                for server in ("null", "keytrail", "moto"):
                    port = ports[server]
                    rounds[server].append(run_wrk(port, WORKLOADS[workload](port, setup)))
            summaries.append((workload, {s: median_of(r) for s, r in rounds.items()}, rounds))
        memory = {name: dict(startup_s=round(proc.startup_s, 3),
                             idle_rss_mib=round(proc.idle_rss_mib, 1),
                             peak_rss_mib=round(proc.peak_rss_mib(), 1))
                  for name, proc in (("keytrail", keytrail), ("null", null), ("moto", moto))}
    finally:
        for proc in (keytrail, null, moto):
            proc.stop()
    events = subprocess.run([keytrail_binary(), "--data-dir",
                             os.path.join(data.name, "data"), "events", "tail", "-n", "100000000"],
                            capture_output=True, text=True, env=env).stdout.count("\n")
    failed = False
    for workload, results, rounds in summaries:
        kt, ceiling, peer = results["keytrail"], results["null"], results["moto"]
        summary = {
            "operation": workload,
            "load": f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s",
            "rounds": ROUNDS,
            "results": results,
            "each_round": rounds,
            "memory": memory,
            "ratio_keytrail_to_ceiling": round(kt["rps"] / ceiling["rps"], 3),
            "ratio_keytrail_to_moto": round(kt["rps"] / peer["rps"], 1),
        }
        name = "".join(c if c.isalnum() else "-" for c in workload).strip("-").lower()
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(summary, f, indent=2)
        each = f", median of {ROUNDS} interleaved rounds" if ROUNDS > 1 else ""
        print(f"\n{workload}, {summary['load']}, {os.cpu_count()} cores{each}")
        print(f"{'server':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for server in ("null", "keytrail", "moto"):
            r = results[server]
            print(f"{server:<10} {r['rps']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['non_2xx']:>8}")
        print(f"keytrail / ceiling = {summary['ratio_keytrail_to_ceiling']}   "
              f"keytrail / moto = {summary['ratio_keytrail_to_moto']}x")
        if ROUNDS > 1:
            print("keytrail rounds: " + ", ".join(
                f"{r['rps']:.0f} req/s p99 {r['p99_ms']:.2f} ms" for r in rounds["keytrail"]))
        if kt["non_2xx"]:
            print(f"keytrail answered errors during {workload}: the figures are not valid",
                  file=sys.stderr)
            failed = True
    print(f"\n{'server':<10} {'start s':>8} {'idle MiB':>9} {'peak MiB':>9}")
    for server in ("null", "keytrail", "moto"):
        m = memory[server]
        print(f"{server:<10} {m['startup_s']:>8.3f} {m['idle_rss_mib']:>9.1f} "
              f"{m['peak_rss_mib']:>9.1f}")
    print(f"events journaled by keytrail during the run: {events}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
