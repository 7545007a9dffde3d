#!/bin/sh
# `deno task dev` / `deno task cli`: runs Carrier from source with the narrow
# permissions its configuration needs. scripts/run_args.ts works them out; this
# shell then replaces itself with the server (exec), so no launcher of ours stays
# beside it and signals (SIGHUP, SIGTERM) reach it directly.
set -eu
here=$(dirname "$0")
# The task passes the Deno that runs it (it need not be on the PATH, e.g. under npx).
deno=${DENO:-deno}
lines=$("$deno" run --quiet --no-prompt --allow-read --allow-env --allow-sys=hostname "$here/run_args.ts" "$@")
# One argument per line, each behind a "-" (so an empty argument survives);
# run_args.ts refuses line breaks inside arguments.
set --
while IFS= read -r line; do
  set -- "$@" "${line#-}"
done <<ARGUMENTS
$lines
ARGUMENTS
exec "$@"
