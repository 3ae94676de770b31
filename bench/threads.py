"""Server CPU per request by thread, for two or more keytrail binaries run in turn.

On a host whose speed moves by a quarter within minutes, one run of each binary says little;
runs of the binaries interleaved round by round, and the CPU each of the server's threads spent
per request (from /proc/<pid>/task/*/stat around the wrk run) and the context switches they
made (from .../status), say more. Used for the experiments in docs/benchmarks.md, "Three
structural experiments ..." and "Fewer wake-ups of the log and the indexer".

    bench/threads.sh BINARY [BINARY ...]     (ROUNDS=4 WORKLOAD=kms:GenerateDataKey)

A change to the accept loop shared with the null server moves the ceiling too: give an argument
as KEYTRAIL_BINARY,NULL_SERVER_BINARY and each round also runs that build's null server under
the same load right before, and prints keytrail's ratio to it.
"""

import os
import shutil
import statistics
import sys
import tempfile

import bench

ROUNDS = int(os.environ.get("ROUNDS", "4"))
WORKLOAD = os.environ.get("WORKLOAD", "kms:GenerateDataKey")


def thread_stats(pid):
    """CPU ticks, involuntary and voluntary context switches so far, by thread name (first 12
    chars). A thread preempted is switched out involuntarily; one that sleeps or waits for I/O,
    voluntarily (and whoever wakes it up again may preempt another)."""
    stats = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            name = open(f"{base}/comm").read().strip()[:12]
            fields = open(f"{base}/stat").read().rsplit(")", 1)[1].split()
            status = {line.split(":")[0]: line.split()[1] for line in open(f"{base}/status")
                      if "ctxt_switches:" in line}
            involuntary = int(status["nonvoluntary_ctxt_switches"])
            voluntary = int(status["voluntary_ctxt_switches"])
        except (OSError, KeyError, IndexError):
            continue
        ticks, inv, vol = stats.get(name, (0, 0, 0))
        stats[name] = (ticks + int(fields[11]) + int(fields[12]), inv + involuntary,
                       vol + voluntary)
    return stats


def null_run(binary):
    """req/s of the null server `binary` under the workload's load."""
    port = bench.free_port()
    null = bench.start_null(port, binary)
    try:
        return bench.run_wrk(port, bench.WORKLOADS[WORKLOAD](port, {}))["rps"]
    finally:
        null.stop()


def one_run(binary):
    """req/s, p99 and, per thread name, (µs of CPU, involuntary switches, voluntary switches)
    per request."""
    directory = tempfile.mkdtemp(prefix="keytrail-threads-")
    port = bench.free_port()
    server = bench.start_keytrail(bench.keytrail_config(directory),
                                  os.path.join(directory, "data"), port, binary=binary)
    try:
        setup = {port: bench.kms_setup(port)}
        script = bench.WORKLOADS[WORKLOAD](port, setup)
        before = thread_stats(server.proc.pid)
        result = bench.run_wrk(port, script)
        after = thread_stats(server.proc.pid)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    requests = max(result["rps"] * bench.DURATION, 1)
    per_second = os.sysconf("SC_CLK_TCK")
    threads = {}
    for name, now in after.items():
        ticks, involuntary, voluntary = (a - b for a, b in zip(now, before.get(name, (0, 0, 0))))
        if ticks or involuntary or voluntary:
            threads[name] = (ticks / per_second * 1e6 / requests, involuntary / requests,
                             voluntary / requests)
    return result["rps"], result["p99_ms"], threads


def main():
    binaries = sys.argv[1:]
    if len(binaries) < 2:
        sys.exit(__doc__)
    runs = {b: [] for b in binaries}
    print(f"{WORKLOAD}, wrk -t2 -c{bench.CONNECTIONS} -d{bench.DURATION}s, rounds: {ROUNDS}")
    for round_number in range(1, ROUNDS + 1):
        for argument in binaries:
            binary, _, null_binary = argument.partition(",")
            ceiling = null_run(null_binary) if null_binary else None
            rps, p99, threads = one_run(binary)
            switches = sum(inv + vol for _, inv, vol in threads.values())
            runs[argument].append((rps, sum(cpu for cpu, _, _ in threads.values()), ceiling,
                                   switches))
            detail = "  ".join(f"{name} {cpu:.1f}us/{inv:.2f}/{vol:.2f}"
                               for name, (cpu, inv, vol) in sorted(threads.items()))
            against = f"  null {ceiling:,.0f} req/s, ratio {rps / ceiling:.3f}" if ceiling else ""
            print(f"round {round_number}  {binary}: {rps:,.0f} req/s  p99 {p99:.2f} ms{against}  "
                  f"(per request: thread cpu/involuntary/voluntary switches) {detail}",
                  flush=True)
    print("\nmeans over the rounds")
    for argument, results in runs.items():
        against = ""
        if all(ceiling for _, _, ceiling, _ in results):
            against = (f", null {statistics.mean(n for _, _, n, _ in results):,.0f} req/s, "
                       f"ratio {statistics.mean(r / n for r, _, n, _ in results):.3f}")
        print(f"  {argument}: {statistics.mean(r for r, _, _, _ in results):,.0f} req/s, "
              f"{statistics.mean(c for _, c, _, _ in results):.1f} us of server CPU and "
              f"{statistics.mean(s for _, _, _, s in results):.3f} context switches per request"
              f"{against}")


if __name__ == "__main__":
    main()
