#!/usr/bin/env bash
# LookupEvents over a large Event history (see bench/lookup.py): the journal filled with
# EVENTS synthetic management events (default 10 million), each lookup attribute timed.
#   EVENTS=10000000 bench/lookup.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/lookup.py "$@"
