"""Instructions per request, counted by callgrind: keytrail against the null server.

Requests per second on a shared 2-core host swing by a fifth between runs of the same binary,
which hides any change worth less than that. Instructions executed per request do not swing:
two runs of one binary agree within about 1 %. So this is the yardstick for CPU work on the
request path; bench/run.sh stays the one for throughput and latency.

Each server runs under valgrind's callgrind with counting off; a short wrk warm-up runs, then
counting is switched on for a measured wrk run (few connections: valgrind runs one thread at a
time), and the count is dumped. Every thread of the server is counted: the request threads,
the event log and the indexer. Printed per workload: instructions per request for keytrail and
for the null server (the ratio is the cost of keytrail's work over the bare HTTP stack) and
where keytrail's instructions go, by the main stages of a request; keytrail's callgrind dump is
kept in bench/out/ for callgrind_annotate.

Instructions are not time: system calls and waiting are not counted, and valgrind does not
emulate SHA extensions, so SHA-256 is counted as its vector fallback (several times what the
CPUs here execute with SHA-NI).

    bench/instructions.sh [kms:GenerateDataKey kms:Decrypt ...]    (MEASURE=10 CONNECTIONS=16: seconds measured, wrk connections)
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import bench

MEASURED_SECONDS = int(os.environ.get("MEASURE", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))

# Stages of a request, by the function whose inclusive count measures it (first match wins).
STAGES = [
    ("whole request on its connection task", "keytrail_server::connection_threads::serve_socket"),
    ("  SigV4 verification", "keytrail_server::sigauth::authenticate::{{closure}}"),
    ("  KMS request: parse, run, answer", "keytrail_server::kms_wire::run::{{closure}}"),
    ("    KMS operation with its event", "keytrail_kms::service::Kms::execute::{{closure}}"),
    ("      event record: build and serialize", "keytrail_audit::Journal::record::{{closure}}"),
    ("      key lookup and authorization", "keytrail_kms::service::Kms::resolve::{{closure}}"),
    ("event log thread (append, fdatasync)", "keytrail_store::sqlite::journal_loop"),
    ("indexer thread (SQLite tables)", "keytrail_store::sqlite::writer_loop"),
    ("SHA-256 blocks, all callers (no SHA-NI here)", "sha256_block_data_order"),
]


def callgrind(argv, ready_line, port, workload, out, make_setup):
    """Runs `argv` under callgrind with `workload`'s requests; `make_setup(port)` prepares what
    they name (keys, a ciphertext). Returns requests, failures, the dump and the setup."""
    for stale in glob.glob(out + "*"):
        os.unlink(stale)
    proc = bench.Proc("callgrind", ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                    f"--callgrind-out-file={out}", *argv],
                      ready_line=ready_line, env=bench.QUIET)
    try:
        setup = make_setup(port)
        with open(out + ".lua", "w") as f:
            f.write(workload(port, {port: setup}))
        url = f"http://127.0.0.1:{port}/"
        wrk = ["wrk", "-t1", f"-c{CONNECTIONS}", "-s", out + ".lua", url]
        subprocess.run(wrk[:1] + ["-d3s"] + wrk[1:], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--instr=on", str(proc.proc.pid)], check=True,
                       capture_output=True)
        result = subprocess.run(wrk[:1] + [f"-d{MEASURED_SECONDS}s"] + wrk[1:], check=True,
                                capture_output=True, text=True).stdout
        subprocess.run(["callgrind_control", "--dump", str(proc.proc.pid)], check=True,
                       capture_output=True)
    finally:
        proc.stop()
    requests = int(re.search(r"(\d+) requests in", result).group(1))
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", result)
    dumps = sorted(glob.glob(out + ".*[0-9]"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {argv[0]}")
    return requests, int(failed.group(1)) if failed else 0, dumps[0], setup


def inclusive(dump):
    """Inclusive instruction counts by function name."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
                          check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.+?)(?: \[.*\])?$", line)
        if m:
            # "file:function"; a function name has colons of its own, a file name none.
            name = re.sub(r"^(\?\?\?|[^:\s]*[/.][^:\s]*):(?!:)", "", m.group(2))
            counts[name] = max(counts.get(name, 0), int(m.group(1).replace(",", "")))
    total = re.search(r"([\d,]+) \([^)]*\)\s+PROGRAM TOTALS", text)
    return int(total.group(1).replace(",", "")) if total else 0, counts


def stage_counts(counts):
    found = []
    for label, function in STAGES:
        value = max((v for name, v in counts.items() if function in name), default=0)
        found.append((label, value))
    return found


def main():
    names = sys.argv[1:] or ["kms:GenerateDataKey", "kms:Decrypt"]
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (scripts/debian-tools.sh valgrind)")
    os.makedirs(bench.OUT, exist_ok=True)
    results = []
    for name in names:
        workload = bench.WORKLOADS[name]
        make_setup = bench.kms_setup if name.startswith("kms:") else (lambda _port: {})
        work = tempfile.mkdtemp(prefix="keytrail-instructions-")
        try:
            port = bench.free_port()
            kt = callgrind(bench.keytrail_argv(bench.keytrail_binary(),
                                              bench.keytrail_config(work),
                                              os.path.join(work, "data"), port),
                           "keytrail listening on", port, workload,
                           os.path.join(work, "keytrail.cg"), make_setup)
            null_port = bench.free_port()
            null = callgrind([os.path.join(bench.RELEASE, "keytrail-null-server"),
                              f"127.0.0.1:{null_port}"],
                             "null server listening on", null_port, workload,
                             os.path.join(work, "null.cg"), lambda _port: kt[3])
            kt_total, kt_counts = inclusive(kt[2])
            # The dump, for callgrind_annotate or kcachegrind.
            shutil.copy(kt[2], os.path.join(bench.OUT, f"callgrind-{name.replace(':', '-')}.out"))
            null_total, _ = inclusive(null[2])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        kt_per, null_per = kt_total / max(kt[0], 1), null_total / max(null[0], 1)
        stages = [(label, round(v / max(kt[0], 1))) for label, v in stage_counts(kt_counts)]
        results.append({"workload": name, "keytrail_requests": kt[0], "keytrail_failed": kt[1],
                        "keytrail_instructions_per_request": round(kt_per),
                        "null_instructions_per_request": round(null_per),
                        "ratio_to_null": round(kt_per / null_per, 2) if null_per else None,
                        "stages": dict(stages)})
        print(f"\n{name}: {kt[0]} requests measured ({kt[1]} failed); null server {null[0]}")
        print(f"  keytrail {kt_per:>10,.0f} instructions/request")
        print(f"  null     {null_per:>10,.0f} instructions/request"
              f"   keytrail / null = {kt_per / null_per:.2f}" if null_per else "")
        for label, per in stages:
            # A stage the compiler inlined into its caller has no count of its own.
            print(f"  {label:<44} {per:>10,}" if per else f"  {label:<44} {'(inlined)':>10}")
    with open(os.path.join(bench.OUT, "instructions.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
