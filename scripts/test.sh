#!/usr/bin/env bash
# Runs every test keytrail has: formatting and lints, unit and integration tests (the real
# binary driven by the AWS SDK for Rust), and the end-to-end suite with the aws CLI and boto3.
# Installs what it needs (a Python venv in .venv) idempotently. Benchmarks are separate (bench/).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --workspace -- -D warnings
echo "== cargo build (the binary the integration tests start)"
cargo build -p keytrail
echo "== cargo test"
cargo test --workspace
echo "== end-to-end (aws CLI, boto3)"
tests/e2e/run.sh
echo "== all tests passed"
