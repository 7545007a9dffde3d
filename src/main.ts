/**
 * Carrier's command line: `serve`, `queue`, `users`, `check-config`. Usage and
 * configuration errors print one line and exit 2; a missing Deno permission
 * prints the flag it needs instead of a stack trace.
 */

import { buildConfig } from "./config/build.ts";
import { ConfigError } from "./config/error.ts";
import { COMMAND_OPTIONS, configFlags, parseFlags } from "./config/flags.ts";
import type { Config } from "./config/schema.ts";
import { runQueueCommand } from "./queue/queue_command.ts";
import { runServe } from "./serve.ts";
import { runUsersCommand } from "./policy/users_command.ts";
import { type Command, permissionFlags } from "./permissions.ts";
import { flushLog } from "./ops/log.ts";

import { VERSION } from "./version.ts";

export { VERSION };

const USAGE = `carrier ${VERSION} - an SMTP relay for local programs

Usage:
  carrier serve [options]              accept mail and relay it upstream
  carrier queue list [--json]          show queued messages
  carrier queue show ID [--json]       show one message's envelope and bytes
  carrier queue flush                  retry every queued message now
  carrier queue delete ID              remove a message from the queue
  carrier users add NAME --users FILE  add or replace a user (password on stdin)
  carrier check-config [options]       validate configuration, print permissions

Options (also snake_case keys in a TOML file given with --config; see carrier.example.toml):
  --config FILE                  carrier.toml (or camelCase .json) config file (env CARRIER_CONFIG)
  --listen ADDR                  plain SMTP listener, repeatable (default 127.0.0.1:2525)
  --listen-tls ADDR              implicit-TLS listener (RFC 8314), repeatable
  --hostname NAME                name in the greeting and Received: (default: system host name)
  --spool DIR                    queue directory (default ./spool)
  --max-message-size BYTES       largest message accepted (default 25M)
  --max-recipients N             recipients per message (default 100)
  --max-connections N            connections in total (default 200)
  --max-connections-per-client N connections per client address (default 50)
  --max-errors N                 error replies before a session is closed (default 20)
  --command-timeout DURATION     to receive one command line (default 5m)
  --data-timeout DURATION        between bytes during DATA (default 3m)
  --data-total-timeout DURATION  for a whole DATA phase (default 30m)
  --shutdown-timeout DURATION    for sessions and deliveries to finish on stop (default 30s)
  --relay-networks CIDRS         clients that may relay without AUTH (default 127.0.0.0/8,::1/128)
  --proxy-protocol-from CIDRS    load balancers that must send a PROXY v1/v2 header first
                                 (env CARRIER_PROXY_PROTOCOL_FROM; default none)
  --tls-cert FILE --tls-key FILE certificate for STARTTLS and --listen-tls (PEM)
  --users FILE                   users for inbound AUTH (see: carrier users add)
  --auth-on-plaintext-loopback   allow AUTH without TLS from loopback clients
  --rate-messages-per-minute N   per client address and per user (default 0 = off)
  --rate-recipients-per-hour N   per client address and per user (default 0 = off)
  --upstream URL                 starttls://user@host:587, smtps://user@host:465 or
                                 smtp://127.0.0.1:25 (env CARRIER_UPSTREAM); none = hold mail
  --upstream-password-file FILE  upstream password (or env CARRIER_UPSTREAM_PASSWORD)
  --upstream-ca FILE             trust only this CA (PEM) for the upstream (private smarthost)
  --upstream-servername NAME     TLS name to verify when the upstream is an IP address
  --upstream-timeout DURATION    to connect and secure the upstream connection (default 60s)
  --delivery-concurrency N       upstream connections at once (default 16)
  --messages-per-connection N    messages sent on one upstream connection (default 50)
  --retry-min DURATION           first retry delay, doubling (default 1m)
  --retry-max DURATION           longest retry delay (default 1h)
  --max-queue-lifetime DURATION  then undelivered mail bounces (default 5d)
  --delay-warning DURATION       warn the sender once after this long undelivered (default 4h, 0 off)
  --metrics-listen ADDR          HTTP /healthz and /metrics (e.g. 127.0.0.1:9025)
  --log-format text|json         log line format on stderr (default text)
  --json                         machine-readable output for queue commands
  --help, --version
`;

/** Runs the command line; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === "--version" || command === "-V") {
      console.log(`carrier ${VERSION}`);
      return 0;
    }
    if (!["serve", "queue", "users", "check-config"].includes(command)) {
      throw new ConfigError(`unknown command "${command}" (try --help)`);
    }
    const { values, positionals } = parseFlags(rest, COMMAND_OPTIONS, `carrier ${command}`);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const config = await loadConfig(values);
    switch (command as Command) {
      case "serve":
        if (positionals.length > 0) {
          throw new ConfigError(`serve: unexpected argument "${positionals[0]}"`);
        }
        return await runServe(config);
      case "queue":
        return await runQueueCommand(config, positionals, {
          json: values.json === true,
          all: values.all === true,
        });
      case "users":
        return await runUsersCommand(config, positionals);
      case "check-config":
        return checkConfig(config, values.json === true);
    }
    return 2;
  } catch (e) {
    return reportFatal(e);
  }
}

async function loadConfig(values: Record<string, unknown>): Promise<Config> {
  return await buildConfig(configFlags(values), (name) => Deno.env.get(name), () => {
    try {
      return Deno.hostname();
    } catch {
      return "localhost";
    }
  });
}

function checkConfig(config: Config, json: boolean): number {
  const shown = { ...config };
  if (json) {
    console.log(
      JSON.stringify(
        {
          config: shown,
          permissions: permissionFlags(config, "serve", (n) => Deno.env.get(n)),
        },
        null,
        2,
      ),
    );
    return 0;
  }
  console.log("configuration is valid");
  console.log(JSON.stringify(shown, null, 2));
  console.log("\npermission flags for serve:");
  for (const flag of permissionFlags(config, "serve", (n) => Deno.env.get(n))) {
    console.log(`  ${flag}`);
  }
  return 0;
}

/** Prints one clear line for an error that ends the program; returns its exit code. */
export function reportFatal(e: unknown): number {
  flushLog(); // the log lines before it come first
  if (e instanceof ConfigError) {
    console.error(`carrier: ${e.message}`);
    return 2;
  }
  if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
    const flag = /--allow-[a-z]+/.exec(e.message)?.[0];
    console.error(
      `carrier: permission missing: ${e.message.split("\n")[0]}${
        flag ? " (carrier check-config prints the flags a configuration needs)" : ""
      }`,
    );
    return 1;
  }
  console.error(`carrier: ${e instanceof Error ? e.message : String(e)}`);
  return 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
