#!/usr/bin/env bash
# Installs, from Debian, each named tool that is not on the PATH yet (idempotent; the package
# is named like the command). Used by the end-to-end suite and the benchmarks.
#   scripts/debian-tools.sh wrk curl openssl
set -euo pipefail
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
for tool in "$@"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    $sudo_cmd apt-get install -y "$tool" || { $sudo_cmd apt-get update && $sudo_cmd apt-get install -y "$tool"; }
  fi
done
