"""Where keytrail's CPU time goes under load: perf samples of one wrk run, split three ways.

Runs the release keytrail, drives one workload with wrk (-t2 -c64, DURATION seconds) while
`perf record -e cpu-clock --call-graph dwarf` samples every thread of the server, then prints
the share of samples
  - by thread (request threads, event log, indexer, ...),
  - by the code each sample was in (the kernel, the allocator, SQLite, each crate), and
  - on the request threads, by stage: the innermost of SigV4, the KMS operation, the event
    record, sending the answer, ... that the sample's stack passes through.
Then it samples the null server under the same load and prints both servers' CPU per request
in microseconds, stage by stage (each sample is 1/FREQ s of one thread): what keytrail's own
work costs on top of what the null server spends on the same HTTP stack.
Instruction counts (bench/instructions.sh) do not swing with the host but miss the kernel and
waits; this shows those. The samples are kept in bench/out/perf-<workload>.data and
bench/out/perf-null-<workload>.data.

    bench/profile.sh [workload]     (default kms:GenerateDataKey; FREQ=499 samples/s per thread)
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import bench

FREQ = os.environ.get("FREQ", "499")

# (label, substring of a frame's symbol), innermost stage first wins; the names are the
# functions that run each stage.
STAGES = [
    ("SigV4 verification", "sigauth::authenticate"),
    ("event record: build", "EventRecord"),
    ("event record: serialize and hand to the log", "Journal::record"),
    ("authorization (key policy, grants)", "Kms::authorize"),
    ("KMS operation (key lookup, crypto, answer)", "Kms::execute"),
    ("KMS wire (JSON in and out, errors)", "kms_wire::"),
    ("JSON protocol dispatch", "json::handle"),
    ("reading the body", "read_body"),
    ("HTTP parsing", "Http1Transaction>::parse"),
    ("HTTP encoding", "Http1Transaction>::encode"),
    ("sending the answer (writev)", "writev"),
    ("receiving (recv)", "recv"),
    ("waiting for events (epoll)", "epoll_wait"),
    ("futex (wake-ups, parking)", "futex"),
    ("connection machinery (hyper, axum layers, tokio tasks, timers)",
     "tokio::runtime::scheduler"),
]
# Connections are served on threads named keytrail-conn-N (`connection_threads`).
REQUEST_THREADS = "keytrail-conn-"


def samples(perf_script_output):
    """(thread name, [(address, frame symbol)], innermost first) per sample of `perf script`;
    functions inlined at one address are frames of their own with that address."""
    name, frames = None, []
    for line in perf_script_output.splitlines():
        if not line.startswith((" ", "\t")):
            if frames:
                yield name, frames
            name, frames = (line.split(" ", 1)[0] if line.strip() else None), []
            continue
        parts = line.strip().split(" ", 1)
        if len(parts) == 2:
            frames.append((parts[0], parts[1]))
    if frames:
        yield name, frames


def crate_of(symbol):
    """The crate a Rust symbol names, if it names one outside its generic parameters."""
    previous = None
    while previous != symbol:
        previous, symbol = symbol, re.sub(r"(?<=[A-Za-z0-9_])<[^<>]*>", "", symbol)
    found = re.search(r"([a-z_][a-z0-9_]*)::", symbol)
    return found.group(1) if found else None


def code_of(frames):
    """Which code a sample was in: the kernel, a C library, the allocator, SQLite, aws-lc, or
    the crate of the innermost function on the stack whose symbol names one."""
    frame = frames[0][1]
    found = re.search(r"\(([^()]*)\)$", frame)
    dso = found.group(1) if found else ""
    symbol = re.sub(r"\+0x[0-9a-f]+ \(.*", "", frame)
    if "kernel" in dso:
        return "kernel"
    if symbol.startswith(("mi_", "_mi_")):
        return "mimalloc"
    if symbol.startswith(("__mem", "mem")):
        return "libc: memcpy, memcmp, ..."
    if "libc" in dso or "vdso" in dso:
        return "libc, vdso"
    if re.match(r"(sqlite3|wal|pcache|btree|vdbe)", symbol, re.I):
        return "SQLite"
    if symbol.startswith("aws_lc"):
        return "aws-lc (crypto)"
    for _, frame in frames:
        crate = crate_of(re.sub(r"\+0x[0-9a-f]+ \(.*", "", frame))
        if crate:
            return crate
    return "other"


def stage_of(frames):
    for _, frame in frames:
        for label, pattern in STAGES:
            if pattern in frame:
                return label
    return "other"


def table(title, counter, total):
    print(f"\n{title}")
    for label, count in counter.most_common():
        share = 100 * count / total
        if share >= 0.5:
            print(f"  {share:5.1f} %  {label}")


def record(pid, port, script, data):
    """wrk's result for one run of `script` while `perf` samples every thread of `pid`."""
    perf = subprocess.Popen(
        ["perf", "record", "-e", "cpu-clock", "-F", FREQ, "--call-graph", "dwarf,16384",
         "-o", data, "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return bench.run_wrk(port, script)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()


def breakdown(data):
    """Sample counts by thread, by code and (request threads) by stage, and a per-request split:
    each request thread's samples by stage, any other thread's as that thread."""
    output = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True,
                            check=True).stdout
    by_thread, by_code, by_stage, split = (collections.Counter() for _ in range(4))
    for thread, frames in samples(output):
        by_thread[thread] += 1
        by_code[code_of(frames)] += 1
        if thread.startswith(REQUEST_THREADS):
            stage = stage_of(frames)
            by_stage[stage] += 1
            split[stage] += 1
        else:
            split[f"thread {thread}"] += 1
    return by_thread, by_code, by_stage, split


def microseconds(split, result):
    """Sample counts turned into µs of CPU per request of the run."""
    requests = max(result["rps"] * bench.DURATION, 1)
    return {label: count / int(FREQ) / requests * 1e6 for label, count in split.items()}


def main():
    workload = sys.argv[1] if len(sys.argv) > 1 else "kms:GenerateDataKey"
    os.makedirs(bench.OUT, exist_ok=True)
    data = os.path.join(bench.OUT, f"perf-{workload.replace(':', '-')}.data")
    null_data = os.path.join(bench.OUT, f"perf-null-{workload.replace(':', '-')}.data")
    directory = tempfile.mkdtemp(prefix="keytrail-profile-")
    port = bench.free_port()
    server = bench.start_keytrail(bench.keytrail_config(directory),
                                  os.path.join(directory, "data"), port)
    try:
        script = bench.WORKLOADS[workload](port, {port: bench.kms_setup(port)})
        result = record(server.proc.pid, port, script, data)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    port = bench.free_port()
    null = bench.start_null(port)
    try:
        null_result = record(null.proc.pid, port, bench.WORKLOADS[workload](port, {}), null_data)
    finally:
        null.stop()
    print(f"{workload}: {result['rps']:,.0f} req/s, p99 {result['p99_ms']} ms; null server "
          f"{null_result['rps']:,.0f} req/s (under perf, which costs a few percent)")
    by_thread, by_code, by_stage, split = breakdown(data)
    total = sum(by_thread.values())
    if not total:
        sys.exit("perf recorded no samples")
    table(f"samples by thread ({total})", by_thread, total)
    table("by the code a sample was in, all threads", by_code, total)
    request_total = sum(by_stage.values())
    if request_total:
        table(f"request threads by stage ({request_total} samples)", by_stage, request_total)
    ours = microseconds(split, result)
    theirs = microseconds(breakdown(null_data)[3], null_result)
    print("\nµs of server CPU per request: keytrail, the null server, keytrail's own")
    for label in sorted(set(ours) | set(theirs), key=lambda l: -ours.get(l, 0)):
        mine, null_us = ours.get(label, 0.0), theirs.get(label, 0.0)
        if max(mine, null_us) >= 0.05:
            print(f"  {mine:6.2f}  {null_us:6.2f}  {mine - null_us:6.2f}  {label}")
    mine, null_us = sum(ours.values()), sum(theirs.values())
    print(f"  {mine:6.2f}  {null_us:6.2f}  {mine - null_us:6.2f}  all threads")


if __name__ == "__main__":
    main()
