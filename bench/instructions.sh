#!/usr/bin/env bash
# Instructions per request under callgrind, keytrail against the null server: a count that does
# not swing with the host's load, for judging changes to the request path's CPU work.
# Prints the count per workload, the ratio to the null server and where keytrail's go;
# writes bench/out/instructions.json.
#   MEASURE=10 CONNECTIONS=16 bench/instructions.sh [kms:GenerateDataKey kms:Decrypt ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk valgrind
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail -p keytrail-bench
exec "$root/.venv/bin/python" bench/instructions.py "$@"
