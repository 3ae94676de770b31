#!/usr/bin/env bash
# End-to-end tests with the users' own tools (aws CLI, boto3) against the real binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
scripts/python-env.sh tests/e2e/requirements.txt
# Other S3 clients users run against keytrail, and the browser the usage report is rendered in,
# from Debian.
scripts/debian-tools.sh s3cmd rclone chromium
cargo build --quiet -p keytrail
export KEYTRAIL_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/keytrail"
export PATH="$root/.venv/bin:$PATH"
exec "$root/.venv/bin/python" -m unittest discover -s tests/e2e -p 'test_*.py' -v
