#!/usr/bin/env bash
# Installs what Carrier's tests need (pinned Deno from the npm package `deno`,
# swaks and openssl from Debian) when missing, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_deno.sh
if ! command -v swaks >/dev/null || ! command -v openssl >/dev/null || ! command -v python3 >/dev/null; then
  echo "installing swaks, openssl and python3 from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq swaks openssl python3 >/dev/null
fi
deno --version | head -1
exec deno task test "$@"
