#!/usr/bin/env bash
# CloudTrail delivery under load (see bench/trail.py): KMS GenerateDataKey throughput with and
# without a logging trail, the time to write a backlog of events into log files, and whether
# the backlog grows while delivering under full load.
#   DURATION=60 DELIVERY_SECONDS=5 bench/trail.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
export DURATION="${DURATION:-60}"
exec "$root/.venv/bin/python" bench/trail.py "$@"
