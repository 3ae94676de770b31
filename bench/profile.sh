#!/usr/bin/env bash
# Where keytrail's CPU time goes under one workload: perf samples split by thread, by code
# (kernel, allocator, SQLite, each crate) and, on the request threads, by stage; then the null
# server under the same load, and both servers' CPU per request in µs, stage by stage.
#   FREQ=499 DURATION=10 bench/profile.sh [kms:GenerateDataKey]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk
# Debian's package of `perf` is linux-perf, not named like the command.
if ! command -v perf >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y linux-perf || { $sudo_cmd apt-get update && $sudo_cmd apt-get install -y linux-perf; }
fi
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/profile.py "$@"
