#!/usr/bin/env bash
# S3 benchmark: 64 MiB PUT/GET and 4 KiB PUT, SSE-S3 and SSE-KMS, keytrail beside moto_server
# and openssl's single-core AES-GCM and SHA-256 ceilings.   DURATION=10 bench/s3.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/debian-tools.sh wrk curl openssl
scripts/python-env.sh bench/requirements.txt
cargo build --release -p keytrail
exec "$root/.venv/bin/python" bench/s3.py "$@"
