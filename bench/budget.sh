#!/usr/bin/env bash
# How the two cores are shared per request (server, wrk, idle) for the null server and keytrail,
# and what keytrail's server may spend per request to reach half of the null ceiling.
#   ROUNDS=2 DURATION=10 bench/budget.sh [kms:GenerateDataKey]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/budget.py "$@"
