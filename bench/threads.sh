#!/usr/bin/env bash
# Server CPU per request by thread for two or more keytrail binaries (scratch builds of an
# experiment against the shipped one), interleaved round by round on the same workload; an
# argument BINARY,NULL_SERVER_BINARY also measures that build's null server and the ratio.
#   ROUNDS=4 WORKLOAD=kms:GenerateDataKey DURATION=10 bench/threads.sh BINARY[,NULL] BINARY[,NULL] [...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk
scripts/python-env.sh bench/requirements.txt
exec "$root/.venv/bin/python" bench/threads.py "$@"
