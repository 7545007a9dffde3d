# Sourced by scripts: puts the pinned Deno on PATH, installing it from the npm
# package `deno` into .tools/ when the machine has no such version.
CARRIER_DENO_VERSION="2.9.6"
if ! command -v deno >/dev/null || [ "$(deno --version | head -1 | cut -d' ' -f2)" != "$CARRIER_DENO_VERSION" ]; then
  tools_dir="$(pwd)/.tools/deno-$CARRIER_DENO_VERSION"
  if [ ! -x "$tools_dir/node_modules/.bin/deno" ]; then
    echo "installing deno $CARRIER_DENO_VERSION from npm into $tools_dir" >&2
    npm install --silent --no-save --prefix "$tools_dir" "deno@$CARRIER_DENO_VERSION" >&2
  fi
  export PATH="$tools_dir/node_modules/.bin:$PATH"
fi
