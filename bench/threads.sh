#!/usr/bin/env bash
# Server CPU per request by thread for two or more keytrail binaries (scratch builds of an
# experiment against the shipped one), interleaved round by round on the same workload.
#   ROUNDS=4 WORKLOAD=kms:GenerateDataKey DURATION=10 bench/threads.sh BINARY BINARY [...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk
scripts/python-env.sh bench/requirements.txt
exec "$root/.venv/bin/python" bench/threads.py "$@"
