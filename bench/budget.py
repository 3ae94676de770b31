"""How the two cores are shared per request, for the null server and for keytrail, and what
keytrail's server may spend per request to reach half of the null ceiling.

While wrk runs, the middle of the run is sampled: the host's idle share (/proc/stat), the CPU
of every thread of the server and of wrk (/proc/<pid>/task/*/stat). With the cores' time per
request split into server, load generator and idle, the issue's target (half of the null
server's requests per second, wrk on the same cores) becomes a number of microseconds the
server may spend per request, beside what it spends now.

    bench/budget.sh [workload]      (ROUNDS=2, DURATION=10; default kms:GenerateDataKey)
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench
import threads

ROUNDS = max(1, int(os.environ.get("ROUNDS", "2")))
CORES = os.cpu_count() or 1
TICKS = os.sysconf("SC_CLK_TCK")


def host_jiffies():
    """(busy, idle) jiffies of all cores so far; iowait counts as idle."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, idle


def process_ticks(pid):
    """User and system ticks of every thread of `pid` so far."""
    return sum(ticks for ticks, _, _ in threads.thread_stats(pid).values())


def sampled_run(port, script, server_pid):
    """wrk's report, and per request over the sampled middle of the run: server CPU µs, wrk
    CPU µs, the host's idle share."""
    path = bench.wrk_script_file(script)
    try:
        wrk = subprocess.Popen(bench.wrk_argv(port, path), stdout=subprocess.PIPE, text=True)
        # The first and last fifth of a run hold its ramp-up and the tail of its connections.
        time.sleep(bench.DURATION * 0.2)
        start = (time.monotonic(), host_jiffies(), process_ticks(server_pid),
                 process_ticks(wrk.pid))
        time.sleep(bench.DURATION * 0.6)
        end = (time.monotonic(), host_jiffies(), process_ticks(server_pid),
               process_ticks(wrk.pid))
        out, _ = wrk.communicate()
        if wrk.returncode != 0:
            raise RuntimeError(f"wrk failed: {out}")
    finally:
        os.unlink(path)
    result = bench.parse_wrk(out)
    requests = max(result["rps"] * (end[0] - start[0]), 1)
    busy = end[1][0] - start[1][0]
    idle = end[1][1] - start[1][1]
    return {
        "rps": result["rps"],
        "server_us": (end[2] - start[2]) / TICKS * 1e6 / requests,
        "wrk_us": (end[3] - start[3]) / TICKS * 1e6 / requests,
        "idle": idle / max(busy + idle, 1),
    }


def null_round(workload):
    port = bench.free_port()
    null = bench.start_null(port)
    try:
        return sampled_run(port, bench.WORKLOADS[workload](port, {}), null.proc.pid)
    finally:
        null.stop()


def keytrail_round(workload):
    directory = tempfile.mkdtemp(prefix="keytrail-budget-")
    port = bench.free_port()
    server = bench.start_keytrail(bench.keytrail_config(directory),
                                  os.path.join(directory, "data"), port)
    try:
        setup = {port: bench.kms_setup(port)} if workload.startswith("kms:") else {}
        return sampled_run(port, bench.WORKLOADS[workload](port, setup), server.proc.pid)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def line(name, r):
    return (f"  {name:9} {r['rps']:9,.0f} req/s   server {r['server_us']:5.1f} us   "
            f"wrk {r['wrk_us']:5.1f} us   idle {100 * r['idle']:4.1f} % of the cores "
            f"({CORES * (1 - r['idle']) / r['rps'] * 1e6:5.1f} us of busy core time per request)")


def main():
    workload = sys.argv[1] if len(sys.argv) > 1 else "kms:GenerateDataKey"
    if workload not in bench.WORKLOADS:
        sys.exit(f"unknown workload {workload}; known: {list(bench.WORKLOADS)}")
    print(f"{workload}, wrk -t{bench.THREADS} -c{bench.CONNECTIONS} -d{bench.DURATION}s, "
          f"{CORES} cores; CPU per request over the middle 60 % of each run")
    nulls, keytrails = [], []
    for number in range(1, ROUNDS + 1):
        print(f"round {number}")
        nulls.append(null_round(workload))
        print(line("null", nulls[-1]), flush=True)
        keytrails.append(keytrail_round(workload))
        print(line("keytrail", keytrails[-1]), flush=True)
    median = {k: statistics.median(r[k] for r in keytrails) for k in keytrails[0]}
    ceiling = statistics.median(r["rps"] for r in nulls)
    # At half the ceiling, with no idle time, each request has this much of the cores' time;
    # wrk's share is taken as measured under keytrail (it costs more per request there).
    per_request = CORES / (ceiling / 2) * 1e6
    allowed = per_request - median["wrk_us"]
    print(f"\nmedians: null {ceiling:,.0f} req/s; keytrail {median['rps']:,.0f} req/s "
          f"({median['rps'] / ceiling:.3f} of the ceiling), server {median['server_us']:.1f} us, "
          f"wrk {median['wrk_us']:.1f} us, idle {100 * median['idle']:.1f} % per request")
    print(f"half the ceiling ({ceiling / 2:,.0f} req/s) leaves {per_request:.1f} us of the "
          f"cores per request; less wrk's {median['wrk_us']:.1f} us, keytrail's server may "
          f"spend {allowed:.1f} us (it spends {median['server_us']:.1f} us: "
          f"{median['server_us'] / allowed:.2f}x)")


if __name__ == "__main__":
    main()
