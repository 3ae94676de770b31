#!/usr/bin/env bash
# Benchmarks keytrail against the machine's ceiling (a null server on the same HTTP stack) and
# a peer (moto_server), side by side in one run, with wrk replaying a request signed just
# before each run. Prints requests/s, p50/p99 latency and the ratios; writes bench/out/*.json.
#   DURATION=10 CONNECTIONS=64 ROUNDS=3 bench/run.sh   (ROUNDS: medians of interleaved rounds)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/bench.py "$@"
