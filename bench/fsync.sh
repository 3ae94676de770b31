#!/usr/bin/env bash
# fdatasync cost of an append that grows the file against one over zeros already synced, in the
# same run (why the event log writes zeros ahead of its appends).
#   SYNCS=500 BYTES=24000 bench/fsync.sh [directory, default: the repository]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec python3 "$root/bench/fsync.py" "${1:-$root}"
