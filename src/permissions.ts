/**
 * The one definition of the Deno permission flags Carrier runs with, derived from
 * its configuration: the dev task, the compile task and the end-to-end tests all
 * take their flags from here (DESIGN.md principle 6).
 */

import { dirname, resolve } from "node:path";
import { buildConfig, ENV_VARS } from "./config/build.ts";
import { COMMAND_OPTIONS, configFlags, parseFlags } from "./config/flags.ts";
import type { Config } from "./config/schema.ts";
import { formatAddress } from "./config/units.ts";
import { parseUpstreamUrl, upstreamNetTarget } from "./upstream_url.ts";
import { positionalPasswordVariable, resolveUpstreams } from "./config/upstreams.ts";

/**
 * V8 settings every Carrier process runs with (dev task, tests, compiled binary).
 * A 2 MiB young generation (V8's default grows to 16 MiB per semi-space) keeps
 * the resident set near 100 MiB under load; the extra scavenges cost little,
 * since almost everything a session allocates dies young (see README, Performance).
 */
export const RUNTIME_FLAGS = ["--v8-flags=--max-semi-space-size=2"];

/** Commands that run with different permissions. */
export type Command = "serve" | "queue" | "users" | "check-config" | "route";

/** Google's OAuth2 token endpoint (nodemailer's default), reached for XOAUTH2 access tokens. */
export const OAUTH2_TOKEN_HOST = "accounts.google.com:443";

/** Files `serve` only reads: certificate, key, users, upstream passwords and CAs. */
function readOnlyFiles(config: Config): string[] {
  const upstreams = resolveUpstreams(config).upstreams;
  return [
    config.tlsCert,
    config.tlsKey,
    config.users,
    ...config.upstreamPasswordFile,
    config.upstreamCa,
    ...upstreams.flatMap((u) => [u.passwordFile, u.ca]),
  ]
    .filter((file): file is string => file !== undefined).map((file) => resolve(file))
    .filter((file, i, all) => all.indexOf(file) === i);
}

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
      for (const file of readOnlyFiles(config)) read.add(file);
      for (const u of resolveUpstreams(config).upstreams) {
        net.add(upstreamNetTarget(parseUpstreamUrl(u.url)));
        // Each upstream may have a password (and OAuth2 client) of its own.
        envNames.add(u.passwordVariable);
        if (u.oauth2) {
          for (const name of Object.values(u.oauth2)) envNames.add(name);
          if (env(u.oauth2.refreshToken)) net.add(OAUTH2_TOKEN_HOST);
        }
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
      for (const file of readOnlyFiles(config)) read.add(file);
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
  if (!["serve", "queue", "users", "check-config", "route"].includes(command ?? "")) {
    // --help, --version and mistakes need no permissions at all.
    return ["--no-prompt", main, ...args];
  }
  let config: Config;
  try {
    const { values } = parseFlags(rest, COMMAND_OPTIONS[command as Command]);
    try {
      config = await buildConfig(configFlags(values), env, () => "localhost");
    } catch {
      // Let carrier itself report the problem: it may read the config file and nothing else.
      const file = (values.config as string | undefined) ?? env("CARRIER_CONFIG");
      const read = file ? [`--allow-read=${resolve(file)}`] : [];
      return ["--no-prompt", ...read, `--allow-env=${ENV_VARS.join(",")}`, main, ...args];
    }
  } catch {
    return ["--no-prompt", main, ...args];
  }
  return [
    "--no-prompt",
    ...RUNTIME_FLAGS,
    ...permissionFlags(config, command as Command, env),
    main,
    ...args,
  ];
}

/** Smarthosts the released binary may reach (submission 587 and implicit TLS 465). */
export const RELEASE_SMARTHOSTS = [
  "*.gmail.com", // smtp.gmail.com, smtp-relay.gmail.com
  "*.googlemail.com",
  "*.office365.com",
  "*.outlook.com",
  "*.mail.yahoo.com",
  "*.fastmail.com",
  "*.sendgrid.net",
  "*.amazonaws.com", // email-smtp.REGION.amazonaws.com
  "*.mailgun.org",
  "*.postmarkapp.com",
  "*.brevo.com",
  "*.sparkpostmail.com",
  "*.zoho.com",
  "*.zoho.eu",
  "*.mailjet.com",
];

/** Paths the released binary may use: its spool, its config and Docker/systemd secrets. */
export const RELEASE_PATHS = {
  spool: "/var/spool/carrier",
  config: "/etc/carrier",
  secrets: ["/run/secrets", "/run/credentials"],
};

/**
 * The permission set baked into the released binary: default listen addresses,
 * the common smarthosts on 587 and 465, Google's OAuth2 token endpoint, the
 * spool and config directories. To reach other hosts, compile with your own
 * configuration (`deno task compile -- serve --upstream ...`).
 */
export function releaseFlags(): string[] {
  const net = [
    "127.0.0.1:2525",
    "[::1]:2525",
    "127.0.0.1:2465",
    "[::1]:2465",
    "127.0.0.1:9025",
    ...RELEASE_SMARTHOSTS.flatMap((h) => [`${h}:587`, `${h}:465`]),
    OAUTH2_TOKEN_HOST,
  ];
  const read = [RELEASE_PATHS.spool, RELEASE_PATHS.config, ...RELEASE_PATHS.secrets];
  return [
    `--allow-read=${read.join(",")}`,
    `--allow-write=${RELEASE_PATHS.spool},${RELEASE_PATHS.config}`,
    `--allow-net=${net.join(",")}`,
    // The passwords of a failover list of up to 9 plain URLs; named upstreams use files here.
    `--allow-env=${[...ENV_VARS, ...RELEASE_PASSWORD_VARIABLES].join(",")}`,
    "--allow-sys=hostname",
  ];
}

/** CARRIER_UPSTREAM_PASSWORD_2 to _9: the release binary's fallbacks' password variables. */
const RELEASE_PASSWORD_VARIABLES = Array.from(
  { length: 8 },
  (_, i) => positionalPasswordVariable(i + 1),
);

/** The union of the flags every command needs under `config`, for a binary built for it. */
export function binaryFlags(config: Config, env: (name: string) => string | undefined): string[] {
  const merged = new Map<string, Set<string>>();
  for (const command of ["serve", "queue", "users", "check-config", "route"] as const) {
    for (const flag of permissionFlags(config, command, env)) {
      const eq = flag.indexOf("=");
      const name = eq === -1 ? flag : flag.slice(0, eq);
      const values = merged.get(name) ?? new Set<string>();
      if (eq !== -1) { for (const v of flag.slice(eq + 1).split(",")) values.add(v); }
      merged.set(name, values);
    }
  }
  return [...merged].map(([name, values]) =>
    values.size ? `${name}=${[...values].join(",")}` : name
  );
}
