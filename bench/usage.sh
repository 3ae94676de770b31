#!/usr/bin/env bash
# KMS usage queries over a month of the hourly rollup (see bench/usage.py): `keytrail usage` and
# GET /_keytrail/usage timed against the server's trivial call and the CLI's start-up.
#   RATE=100 KEYS=20 bench/usage.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/usage.py "$@"
