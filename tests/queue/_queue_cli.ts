/** Runs `carrier queue` subcommands in-process against a temporary spool, capturing output. */
import { join } from "node:path";
import { buildConfig } from "../../src/config/build.ts";
import type { Config } from "../../src/config/schema.ts";
import { runQueueCommand } from "../../src/queue/queue_command.ts";
import type { QueueRecord } from "../../src/queue/record.ts";
import { Spool } from "../../src/queue/spool.ts";
import { storeMessage } from "./_helpers.ts";

export interface Output {
  out: string[];
  err: string[];
  code: number;
}

/** Runs `carrier queue ARGS`, capturing what it prints. */
export async function run(
  config: Config,
  args: string[],
  json = false,
  all = false,
): Promise<Output> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  const write = Deno.stdout.write;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  Deno.stdout.write = (p: Uint8Array) => {
    out.push(new TextDecoder().decode(p));
    return Promise.resolve(p.length);
  };
  try {
    const code = await runQueueCommand(config, args, { json, all });
    return { out, err, code };
  } finally {
    console.log = log;
    console.error = error;
    Deno.stdout.write = write;
  }
}

export async function withQueue(
  fn: (spool: Spool, config: Config) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-queue-cmd-test-" });
  try {
    const spool = await Spool.open(join(dir, "spool"));
    const config = await buildConfig({ spool: spool.dir }, () => undefined, () => "localhost");
    try {
      await fn(spool, config);
    } finally {
      spool.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export async function store(spool: Spool, text: string, record: Partial<QueueRecord> = {}) {
  return (await storeMessage(spool, text, record)).id;
}
