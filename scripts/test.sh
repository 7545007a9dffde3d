#!/usr/bin/env bash
# Installs what Carrier's tests need (pinned Deno from the npm package `deno`,
# swaks, openssl, python3 and haproxy from Debian) when missing, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_deno.sh
# haproxy lives in /usr/sbin, which a non-root PATH may lack.
if ! command -v swaks >/dev/null || ! command -v openssl >/dev/null || ! command -v python3 >/dev/null ||
  ! { command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; }; then
  echo "installing swaks, openssl, python3 and haproxy from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq swaks openssl python3 haproxy >/dev/null
fi
deno --version | head -1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
NO_COLOR=1 deno task test "$@" 2>&1 | tee "$log" || status=$?
# One plain summary line, whatever the runner printed ("N passed, N failed").
summary="$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1 || true)"
if [ -n "$summary" ]; then
  passed="$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")"
  failed="$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")"
  echo "tests: $passed passed, $failed failed"
fi
exit "$status"
