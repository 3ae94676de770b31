#!/usr/bin/env bash
# Benchmarks keytrail against the machine's ceiling (a null server on the same HTTP stack) and
# a peer (moto_server), side by side in one run, with wrk replaying a request signed just
# before each run. Prints requests/s, p50/p99 latency and the ratios; writes bench/out/*.json.
#   DURATION=10 CONNECTIONS=64 bench/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! command -v wrk >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y wrk || { $sudo_cmd apt-get update && $sudo_cmd apt-get install -y wrk; }
fi
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/bench.py "$@"
