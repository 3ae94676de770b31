"""Side-by-side benchmark: keytrail, the null server (ceiling) and moto_server, under wrk.

Every figure is printed as a ratio against references measured in the same run, so results from
different machines can be compared.
"""

import json
import os
import re
import signal
import socket
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


def signed_sts_script(port):
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("test", "test"), "sts", "us-east-1").add_auth(request)
    lines = ['wrk.method = "POST"', f'wrk.body = "{body}"']
    for name, value in request.headers.items():
        if name.lower() == "host":
            continue
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    return "\n".join(lines) + "\n"


def to_ms(value):
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port, script):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency",
                          "-s", path, f"http://127.0.0.1:{port}/"],
                         check=True, capture_output=True, text=True).stdout
    os.unlink(path)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}


def main():
    os.makedirs(OUT, exist_ok=True)
    data = tempfile.TemporaryDirectory()
    config = os.path.join(data.name, "keytrail.toml")
    with open(config, "w") as f:
        f.write('[[credentials]]\naccess_key_id = "test"\nsecret_access_key = "test"\n'
                'account_id = "000000000000"\n')
    kt_port, null_port, moto_port = free_port(), free_port(), free_port()
    env = dict(os.environ, RUST_LOG="warn")
    keytrail = Proc("keytrail", [os.path.join(RELEASE, "keytrail"), "--config", config,
                                 "--data-dir", os.path.join(data.name, "data"), "serve",
                                 "--listen", f"127.0.0.1:{kt_port}"],
                    ready_line="keytrail listening on", env=env)
    null = Proc("null", [os.path.join(RELEASE, "keytrail-null-server"), f"127.0.0.1:{null_port}"],
                ready_line="null server listening on", env=env)
    moto = Proc("moto", [os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p",
                         str(moto_port)], ready_url=f"http://127.0.0.1:{moto_port}/moto-api/")
    results = {}
    try:
        # Sign right before each run: a replayed signature goes stale after 15 minutes.
        for name, port in (("null", null_port), ("keytrail", kt_port), ("moto", moto_port)):
            results[name] = run_wrk(port, signed_sts_script(port))
        for name, proc in (("keytrail", keytrail), ("null", null), ("moto", moto)):
            results[name].update(startup_s=round(proc.startup_s, 3),
                                 idle_rss_mib=round(proc.idle_rss_mib, 1),
                                 peak_rss_mib=round(proc.peak_rss_mib(), 1))
    finally:
        for proc in (keytrail, null, moto):
            proc.stop()
    events = subprocess.run([os.path.join(RELEASE, "keytrail"), "--data-dir",
                             os.path.join(data.name, "data"), "events", "tail", "-n", "100000000"],
                            capture_output=True, text=True, env=env).stdout.count("\n")
    kt, ceiling, peer = results["keytrail"], results["null"], results["moto"]
    summary = {
        "operation": "sts:GetCallerIdentity",
        "load": f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s",
        "results": results,
        "keytrail_events_journaled": events,
        "ratio_keytrail_to_ceiling": round(kt["rps"] / ceiling["rps"], 3),
        "ratio_keytrail_to_moto": round(kt["rps"] / peer["rps"], 1),
    }
    with open(os.path.join(OUT, "sts-get-caller-identity.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\nsts:GetCallerIdentity, {summary['load']}, {os.cpu_count()} cores")
    print(f"{'server':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
          f"{'start s':>8} {'idle MiB':>9} {'peak MiB':>9}")
    for name in ("null", "keytrail", "moto"):
        r = results[name]
        print(f"{name:<10} {r['rps']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['non_2xx']:>8} {r['startup_s']:>8.3f} {r['idle_rss_mib']:>9.1f} "
              f"{r['peak_rss_mib']:>9.1f}")
    print(f"keytrail / ceiling = {summary['ratio_keytrail_to_ceiling']}   "
          f"keytrail / moto = {summary['ratio_keytrail_to_moto']}x   "
          f"events journaled by keytrail: {events}")
    if kt["non_2xx"]:
        print("keytrail answered errors during the run: the figures are not valid", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
