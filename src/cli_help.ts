/**
 * The help texts of the command line: a short overview for `carrier --help`, and each
 * command's own usage for `carrier COMMAND --help`. The configuration flags are listed
 * from one table, grouped as in carrier.example.toml, each with its default.
 */

import type { CONFIG_OPTIONS } from "./config/flags.ts";
import { VERSION } from "./version.ts";

/** A configuration flag's name without the leading `--`. */
export type ConfigFlag = keyof typeof CONFIG_OPTIONS;

/** One configuration flag in help: its name, value placeholder ("" for a switch), default, text. */
export type FlagHelp = readonly [
  flag: ConfigFlag,
  value: string,
  defaultValue: string,
  text: string,
];

/** A heading in a command's help and the flags listed under it. */
export interface FlagGroup {
  heading: string;
  flags: readonly FlagHelp[];
}

/** The command a help text is for. */
export type HelpCommand = "serve" | "check-config" | "queue" | "users" | "route";

/** Every configuration flag but `--config`, under its heading, in the order help shows them. */
export const FLAG_GROUPS: readonly FlagGroup[] = [
  {
    heading: "Listen",
    flags: [
      ["listen", "ADDR", "127.0.0.1:2525", "plain SMTP listener, repeatable"],
      ["listen-tls", "ADDR", "none", "implicit-TLS listener (RFC 8314), repeatable"],
      ["hostname", "NAME", "system host name", "name in the greeting and Received:"],
      ["proxy-protocol-from", "CIDRS", "none", "balancers that send a PROXY header first"],
    ],
  },
  {
    heading: "Limits",
    flags: [
      ["max-message-size", "BYTES", "25M", "largest message accepted"],
      ["max-recipients", "N", "100", "recipients per message"],
      ["max-connections", "N", "200", "connections in total"],
      ["max-connections-per-client", "N", "50", "connections per client address"],
      ["max-errors", "N", "20", "error replies before a session is closed"],
      ["command-timeout", "DURATION", "5m", "to receive one command line"],
      ["data-timeout", "DURATION", "3m", "between bytes during DATA"],
      ["data-total-timeout", "DURATION", "30m", "for a whole DATA phase"],
      ["shutdown-timeout", "DURATION", "30s", "for sessions and deliveries to end on stop"],
    ],
  },
  {
    heading: "TLS and AUTH",
    flags: [
      ["tls-cert", "FILE", "none", "PEM certificate for STARTTLS and --listen-tls"],
      ["tls-key", "FILE", "none", "PEM key of --tls-cert"],
      ["users", "FILE", "none", "users for inbound AUTH (carrier users --help)"],
      ["auth-on-plaintext-loopback", "", "off", "offer AUTH without TLS to loopback clients"],
    ],
  },
  {
    heading: "Policy",
    flags: [
      ["relay-networks", "CIDRS", "127.0.0.0/8,::1/128", "may relay without AUTH"],
      ["rate-messages-per-minute", "N", "0 = off", "per client address and per user"],
      ["rate-recipients-per-hour", "N", "0 = off", "per client address and per user"],
    ],
  },
  {
    heading: "Upstream",
    flags: [
      ["upstream", "URL", "hold mail", "starttls://USER@HOST:587, smtps://, smtp://"],
      ["upstream-password-file", "FILE", "none", "the upstream password"],
      ["upstream-ca", "FILE", "system roots", "trust only this CA (PEM) for the upstream"],
      ["upstream-servername", "NAME", "URL's host", "TLS name to verify for an IP address"],
      ["upstream-timeout", "DURATION", "60s", "to connect, greet and secure the connection"],
    ],
  },
  {
    heading: "Delivery",
    flags: [
      ["spool", "DIR", "./spool", "queue directory"],
      ["delivery-concurrency", "N", "16", "upstream connections at once"],
      ["messages-per-connection", "N", "50", "messages sent on one connection"],
      ["retry-min", "DURATION", "1m", "first retry delay, doubling"],
      ["retry-max", "DURATION", "1h", "longest retry delay"],
      ["max-queue-lifetime", "DURATION", "5d", "then undelivered mail bounces"],
      ["delay-warning", "DURATION", "4h", "warn the sender once after this long; 0: never"],
    ],
  },
  {
    heading: "Logs and metrics",
    flags: [
      ["log-format", "text|json", "text", "log line format on stderr"],
      ["log-level", "LEVEL", "info", "least severity logged: debug, info, warn or error"],
      ["metrics-listen", "ADDR", "none", "HTTP /healthz, /readyz and /metrics"],
      [
        "ready-upstream-outage",
        "DURATION",
        "10m",
        "/readyz fails after upstream failing this long",
      ],
    ],
  },
];

const CONFIG_LINE =
  "  --config FILE  a carrier.toml (or camelCase .json) file with these settings in\n" +
  "                 snake_case (see carrier.example.toml; env CARRIER_CONFIG)";

/** Lines of `  NAME  TEXT` with the texts in one column. */
function columns(rows: readonly [string, string][]): string {
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  return rows.map(([name, text]) => `  ${name.padEnd(width)}${text}`).join("\n");
}

/** The configuration flags under their headings, each line `--flag VALUE  text (default X)`. */
function flagSections(): string {
  const name = ([flag, value]: FlagHelp) => `--${flag}${value ? ` ${value}` : ""}`;
  const width = Math.max(...FLAG_GROUPS.flatMap((g) => g.flags).map((f) => name(f).length)) + 2;
  return FLAG_GROUPS.map((group) =>
    `${group.heading}:\n` +
    group.flags.map((f) => `  ${name(f).padEnd(width)}${f[3]} (default ${f[2]})`).join("\n")
  ).join("\n\n");
}

const FOOTER = `Durations are seconds or 30s, 5m, 2h, 5d; sizes are bytes or 512K, 25M, 1G.

Environment: CARRIER_UPSTREAM (as --upstream), CARRIER_UPSTREAM_PASSWORD (instead of
--upstream-password-file), CARRIER_PROXY_PROTOCOL_FROM (as --proxy-protocol-from),
CARRIER_OAUTH2_CLIENT_ID, CARRIER_OAUTH2_CLIENT_SECRET, CARRIER_OAUTH2_REFRESH_TOKEN.
Flags win over the environment, which wins over the config file.`;

/** `carrier --help`: what each command does, and where to read more. */
export function overviewHelp(): string {
  return `carrier ${VERSION} - an SMTP relay for local programs

Usage:
${
    columns([
      ["carrier serve [options]", "accept mail and relay it upstream"],
      [
        "carrier check-config [options]",
        "validate a configuration, print the permissions it needs",
      ],
      ["carrier queue SUBCOMMAND", "list, summarise, retry, hold, release or delete queued mail"],
      ["carrier users add NAME", "add or replace a user for inbound AUTH"],
      ["carrier route ADDRESS [--from S]", "say which upstreams mail to ADDRESS would use"],
      ["carrier --version", "print the version"],
    ])
  }

Run "carrier COMMAND --help" for a command's options and their defaults.
`;
}

function serveHelp(): string {
  return `carrier serve - accept mail and relay it upstream

Usage: carrier serve [options]

${CONFIG_LINE}

${flagSections()}

${FOOTER}
`;
}

function checkConfigHelp(): string {
  return `carrier check-config - validate a configuration and print it, with the Deno
permission flags carrier serve needs under it

Usage: carrier check-config [options]

  --json  print the configuration and the permission flags as one JSON object

It takes the options of carrier serve:

${CONFIG_LINE}

${flagSections()}

${FOOTER}
`;
}

function queueHelp(): string {
  return `carrier queue - look at and change the queue in the spool

Usage: carrier queue SUBCOMMAND [--spool DIR | --config FILE]

Subcommands:
${
    columns([
      ["list [--json]", "the queued messages, and when (or why not) each is tried next"],
      ["show ID [--json]", "one message's envelope, recipients and bytes"],
      ["summary [--json]", "counts by state, age and recipient domain; the commonest errors"],
      ["flush", "retry every queued message now (held ones stay held)"],
      ["requeue ID...", "retry these now, the backoff started over (releases them too)"],
      ["hold ID...|--all", "keep messages (or every one) queued, never tried, until released"],
      ["release ID...|--all", "put held messages back on their retry schedule"],
      ["delete ID...", "remove messages from the queue"],
    ])
  }

Options:
${
    columns([
      ["--spool DIR", "queue directory (default ./spool)"],
      ["--config FILE", "read the spool directory from a config file (env CARRIER_CONFIG)"],
      ["--json", "machine-readable output"],
      ["--all", "with hold or release: every message queued now"],
    ])
  }
`;
}

function usersHelp(): string {
  return `carrier users - manage the users for inbound AUTH

Usage: carrier users add NAME --users FILE

${
    columns([
      ["add NAME", "add or replace user NAME; the password is read from standard input"],
    ])
  }

Options:
${
    columns([
      ["--users FILE", "the users file, written with mode 0600 (passwords as scrypt hashes)"],
      ["--config FILE", "read --users from a config file (env CARRIER_CONFIG)"],
    ])
  }

Give the same --users FILE to carrier serve (with --tls-cert and --tls-key) to offer AUTH.
`;
}

function routeHelp(): string {
  return `carrier route - say which upstreams a message would go through, and in what order

Usage: carrier route ADDRESS... [--from SENDER] [--config FILE]

Each recipient ADDRESS is matched against the [[routes]] of the configuration (first match
wins) and otherwise takes the default upstream list; nothing is connected or sent.

Options:
${
    columns([
      ["--from SENDER", "the envelope sender, <> for the null sender (without it, routes"],
      ["", "by sender do not match)"],
      [
        "--config FILE",
        "the configuration to read (env CARRIER_CONFIG); --upstream flags count too",
      ],
      ["--json", "machine-readable output"],
    ])
  }
`;
}

/** `carrier COMMAND --help`: the command's usage, and for serve and check-config every flag. */
export function commandHelp(command: HelpCommand): string {
  switch (command) {
    case "serve":
      return serveHelp();
    case "check-config":
      return checkConfigHelp();
    case "queue":
      return queueHelp();
    case "users":
      return usersHelp();
    case "route":
      return routeHelp();
  }
}
