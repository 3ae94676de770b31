#!/usr/bin/env bash
# Creates (once) the project's Python venv in .venv and installs the pinned requirements given
# as arguments. Idempotent: a requirements file already installed is skipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
for req in "$@"; do
  stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet -r "$req"
    touch "$stamp"
  fi
done
