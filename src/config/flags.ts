/**
 * The command-line flags every config-reading command shares: the option table for
 * node:util parseArgs, and the step from flag values to config keys (whole numbers
 * parsed here, everything else left to buildConfig).
 */

import { parseArgs } from "node:util";
import { ConfigError } from "./error.ts";
import { INTEGER_KEYS } from "./schema.ts";

/** Command-line options shared by all commands that read configuration. */
export const CONFIG_OPTIONS = {
  config: { type: "string" },
  listen: { type: "string", multiple: true },
  "listen-tls": { type: "string", multiple: true },
  hostname: { type: "string" },
  spool: { type: "string" },
  "max-message-size": { type: "string" },
  "max-recipients": { type: "string" },
  "max-connections": { type: "string" },
  "max-connections-per-client": { type: "string" },
  "max-errors": { type: "string" },
  "command-timeout": { type: "string" },
  "data-timeout": { type: "string" },
  "data-total-timeout": { type: "string" },
  "shutdown-timeout": { type: "string" },
  "ready-upstream-outage": { type: "string" },
  "relay-networks": { type: "string" },
  "proxy-protocol-from": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  users: { type: "string" },
  "auth-on-plaintext-loopback": { type: "boolean" },
  "rate-messages-per-minute": { type: "string" },
  "rate-recipients-per-hour": { type: "string" },
  upstream: { type: "string", multiple: true },
  "upstream-password-file": { type: "string", multiple: true },
  "upstream-ca": { type: "string" },
  "upstream-servername": { type: "string" },
  "delivery-concurrency": { type: "string" },
  "messages-per-connection": { type: "string" },
  "retry-min": { type: "string" },
  "retry-max": { type: "string" },
  "max-queue-lifetime": { type: "string" },
  "delay-warning": { type: "string" },
  "upstream-timeout": { type: "string" },
  "log-format": { type: "string" },
  "log-level": { type: "string" },
  "metrics-listen": { type: "string" },
} as const;

/** The options each command takes besides the configuration flags. */
export const COMMAND_OPTIONS: Record<
  "serve" | "queue" | "users" | "check-config" | "route",
  Record<string, { type: "boolean" | "string" }>
> = {
  serve: { help: { type: "boolean" } },
  "check-config": { help: { type: "boolean" }, json: { type: "boolean" } },
  queue: { help: { type: "boolean" }, json: { type: "boolean" }, all: { type: "boolean" } },
  users: { help: { type: "boolean" } },
  route: { help: { type: "boolean" }, json: { type: "boolean" }, from: { type: "string" } },
};

/** Parsed values of the config flags, by flag name. */
export type FlagValues = Partial<Record<keyof typeof CONFIG_OPTIONS, string | string[] | boolean>>;

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function intFlag(value: string, flag: string, min: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new ConfigError(`--${flag}: "${value}" is not a whole number >= ${min}`);
  }
  return Number(value);
}

/**
 * The given flags under their config keys (`--max-errors 5` becomes `maxErrors: 5`),
 * in order; flags of integer keys are parsed. `--config` is left out.
 */
export function flagSettings(flags: FlagValues): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(flags)) {
    if (flag === "config" || value === undefined) continue;
    const key = camel(flag);
    const spec = CONFIG_OPTIONS[flag as keyof typeof CONFIG_OPTIONS];
    const min = INTEGER_KEYS.get(key);
    if (spec.type === "boolean") {
      settings[key] = value;
    } else if (min !== undefined) {
      settings[key] = intFlag(value as string, flag, min);
    } else {
      settings[key] = value;
    }
  }
  return settings;
}

/**
 * Parses a command's arguments with the shared config options plus its own. An option without
 * its value, or with an empty one (`--spool ""`), is refused; `command` names the help to see.
 */
export function parseFlags<T extends Record<string, { type: "string" | "boolean" }>>(
  args: string[],
  extra: T,
  command = "carrier",
): { values: Record<string, string | string[] | boolean | undefined>; positionals: string[] } {
  const options = { ...CONFIG_OPTIONS, ...extra };
  let parsed;
  try {
    parsed = parseArgs({
      args: joinDashValues(args, options),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    const code = (e as { code?: string }).code;
    const option = /'(-[^']*)'/.exec((e as Error).message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) {
      throw new ConfigError(`unknown option ${option} (see ${command} --help)`);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) {
      throw new ConfigError(`${option.replace(/ .*/, "")}: needs a value (see ${command} --help)`);
    }
    throw new ConfigError((e as Error).message.split("\n")[0]);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  for (const [name, value] of Object.entries(values)) {
    if ([value].flat().some((v) => typeof v === "string" && v.trim() === "")) {
      throw new ConfigError(`--${name}: needs a value (see ${command} --help)`);
    }
  }
  return { values, positionals: parsed.positionals };
}

/**
 * `--max-message-size -5` as `--max-message-size=-5`: a value that starts with "-" but is no
 * option reaches the option's own check ("-5" is not a size) instead of parseArgs' "ambiguous".
 */
function joinDashValues(
  args: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const next = args[i + 1];
    const name = arg.startsWith("--") && !arg.includes("=") ? arg.slice(2) : "";
    if (
      options[name]?.type === "string" && next !== undefined && next.startsWith("-") &&
      next !== "--" && !(next.startsWith("--") && next.slice(2).split("=")[0] in options)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Picks the config flags out of a command's parsed values. */
export function configFlags(values: Record<string, unknown>): FlagValues {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CONFIG_OPTIONS)) {
    if (values[key] !== undefined) out[key] = values[key];
  }
  return out as FlagValues;
}
