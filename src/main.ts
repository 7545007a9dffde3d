/**
 * Carrier's command line: `serve`, `queue`, `users`, `check-config`, `route`. Usage and
 * configuration errors print one line and exit 2; a missing Deno permission
 * prints the flag it needs instead of a stack trace.
 */

import { buildConfig } from "./config/build.ts";
import { commandHelp, type HelpCommand, overviewHelp } from "./cli_help.ts";
import { ConfigError } from "./config/error.ts";
import { COMMAND_OPTIONS, configFlags, parseFlags } from "./config/flags.ts";
import type { Config } from "./config/schema.ts";
import { runQueueCommand } from "./queue/queue_command.ts";
import { runServe } from "./serve.ts";
import { runUsersCommand } from "./policy/users_command.ts";
import { type Command, permissionFlags } from "./permissions.ts";
import { flushLog } from "./ops/log.ts";
import { readEnv } from "./granted.ts";
import { describeRouting, runRouteCommand } from "./relay/route_command.ts";
import { resolveUpstreams } from "./config/upstreams.ts";

import { VERSION } from "./version.ts";

export { VERSION };

/** Runs the command line; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      const topic = command === "help" ? rest[0] : undefined;
      if (topic !== undefined && !Object.hasOwn(COMMAND_OPTIONS, topic)) {
        throw new ConfigError(`help: unknown command "${topic}" (try carrier --help)`);
      }
      console.log(topic === undefined ? overviewHelp() : commandHelp(topic as HelpCommand));
      return command === undefined ? 2 : 0;
    }
    if (command === "--version" || command === "-V") {
      console.log(`carrier ${VERSION}`);
      return 0;
    }
    if (!Object.hasOwn(COMMAND_OPTIONS, command)) {
      throw new ConfigError(`unknown command "${command}" (try carrier --help)`);
    }
    const { values, positionals } = parseFlags(
      rest,
      COMMAND_OPTIONS[command as Command],
      `carrier ${command}`,
    );
    if (values.help) {
      console.log(commandHelp(command as HelpCommand));
      return 0;
    }
    if ((command === "serve" || command === "check-config") && positionals.length > 0) {
      throw new ConfigError(
        `${command}: unexpected argument "${positionals[0]}" (see carrier ${command} --help)`,
      );
    }
    const config = await loadConfig(values);
    switch (command as Command) {
      case "serve":
        // A reload builds it again the same way: the file re-read, flags and environment kept.
        return await runServe(config, () => loadConfig(values));
      case "queue":
        return await runQueueCommand(config, positionals, {
          json: values.json === true,
          all: values.all === true,
        });
      case "users":
        return await runUsersCommand(config, positionals);
      case "check-config":
        return checkConfig(config, values.json === true);
      case "route":
        return runRouteCommand(config, positionals, {
          from: values.from as string | undefined,
          json: values.json === true,
        });
    }
    return 2;
  } catch (e) {
    return reportFatal(e);
  }
}

async function loadConfig(values: Record<string, unknown>): Promise<Config> {
  return await buildConfig(configFlags(values), readEnv, () => {
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
          permissions: permissionFlags(config, "serve", readEnv),
        },
        null,
        2,
      ),
    );
    return 0;
  }
  console.log("configuration is valid");
  console.log(JSON.stringify(shown, null, 2));
  console.log("");
  for (const line of describeRouting(resolveUpstreams(config))) console.log(line);
  console.log("\npermission flags for serve:");
  for (const flag of permissionFlags(config, "serve", readEnv)) {
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
