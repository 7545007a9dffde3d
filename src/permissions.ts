/**
 * The one definition of the Deno permission flags Carrier runs with, derived from
 * its configuration: the dev task, the compile task and the end-to-end tests all
 * take their flags from here (DESIGN.md principle 6).
 */

import { dirname, resolve } from "node:path";
import {
  buildConfig,
  type Config,
  configFlags,
  ENV_VARS,
  formatAddress,
  parseFlags,
} from "./config.ts";
import { parseUpstreamUrl, upstreamNetTarget } from "./relay/upstream_url.ts";

/** Commands that run with different permissions. */
export type Command = "serve" | "queue" | "users" | "check-config";

/** Google's OAuth2 token endpoint (nodemailer's default), reached for XOAUTH2 access tokens. */
export const OAUTH2_TOKEN_HOST = "accounts.google.com:443";

/** The `--allow-*` flags `command` needs under `config` (absolute paths). */
export function permissionFlags(
  config: Config,
  command: Command,
  env: (name: string) => string | undefined = () => undefined,
): string[] {
  const read = new Set<string>();
  const write = new Set<string>();
  const net = new Set<string>();
  const envNames = new Set<string>(ENV_VARS);
  const spool = resolve(config.spool);
  if (config.configFile) read.add(resolve(config.configFile));
  switch (command) {
    case "serve": {
      read.add(spool);
      write.add(spool);
      for (const a of [...config.listen, ...config.listenTls]) net.add(formatAddress(a));
      if (config.metricsListen) net.add(formatAddress(config.metricsListen));
      for (
        const file of [
          config.tlsCert,
          config.tlsKey,
          config.users,
          config.upstreamPasswordFile,
          config.upstreamCa,
        ]
      ) {
        if (file) read.add(resolve(file));
      }
      if (config.upstream) {
        net.add(upstreamNetTarget(parseUpstreamUrl(config.upstream)));
        if (env("CARRIER_OAUTH2_REFRESH_TOKEN")) net.add(OAUTH2_TOKEN_HOST);
      }
      break;
    }
    case "queue":
      read.add(spool);
      write.add(spool);
      break;
    case "users":
      if (config.users) {
        // Written atomically through a temporary file beside it.
        read.add(dirname(resolve(config.users)));
        write.add(dirname(resolve(config.users)));
      }
      break;
    case "check-config":
      for (
        const file of [
          config.tlsCert,
          config.tlsKey,
          config.users,
          config.upstreamPasswordFile,
          config.upstreamCa,
        ]
      ) {
        if (file) read.add(resolve(file));
      }
      break;
  }
  const flags: string[] = [];
  if (read.size > 0) flags.push(`--allow-read=${[...read].join(",")}`);
  if (write.size > 0) flags.push(`--allow-write=${[...write].join(",")}`);
  if (net.size > 0) flags.push(`--allow-net=${[...net].join(",")}`);
  flags.push(`--allow-env=${[...envNames].join(",")}`);
  flags.push("--allow-sys=hostname");
  return flags;
}

/**
 * The `deno run` arguments that start `carrier ARGS` from source with exactly the
 * permissions its configuration needs (used by `deno task dev`/`cli` and by tests).
 */
export async function runArguments(
  args: string[],
  env: (name: string) => string | undefined,
): Promise<string[]> {
  const main = new URL("./main.ts", import.meta.url).pathname;
  const [command, ...rest] = args;
  if (!["serve", "queue", "users", "check-config"].includes(command ?? "")) {
    // --help, --version and mistakes need no permissions at all.
    return ["--no-prompt", main, ...args];
  }
  let config: Config;
  try {
    const { values } = parseFlags(rest, { json: { type: "boolean" }, help: { type: "boolean" } });
    config = await buildConfig(configFlags(values), env, () => "localhost");
  } catch {
    // Let carrier itself report the problem, with no permissions granted.
    return ["--no-prompt", main, ...args];
  }
  return ["--no-prompt", ...permissionFlags(config, command as Command, env), main, ...args];
}
