/**
 * `carrier queue list|show|summary|flush|delete|hold|release|requeue`: the operator's view
 * of the spool, for people by default and as JSON with --json. Works whether or not a
 * server runs: it only reads records, and changes go through the server when one runs.
 */

import { join } from "node:path";
import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import type { QueueRecord } from "./record.ts";
import { messageStream } from "./message_reader.ts";
import { Spool, UnknownMessageError } from "./spool.ts";
import { operatorAction } from "./queue_actions.ts";
import { pausedUntil, renderSummary, summarize } from "./queue_summary.ts";
import { readServerState, type ServerState } from "./server_state.ts";

/** Runs a queue subcommand; returns the exit code. */
export async function runQueueCommand(
  config: Config,
  args: string[],
  opts: { json: boolean; all?: boolean },
): Promise<number> {
  const [sub, ...rest] = args;
  const spool = await openExisting(config.spool);
  try {
    switch (sub) {
      case "list":
      case undefined:
        expectArgs(rest, 0, "queue list");
        return await list(spool, opts.json);
      case "show":
        expectArgs(rest, 1, "queue show ID");
        return await show(spool, rest[0], opts.json);
      case "flush":
        expectArgs(rest, 0, "queue flush");
        return await flush(spool, opts.json);
      case "summary":
        expectArgs(rest, 0, "queue summary");
        return await summary(spool, opts.json);
      case "delete":
      case "hold":
      case "release":
      case "requeue":
        return await operatorAction(spool, sub, await targets(spool, sub, rest, opts), opts.json);
      default:
        throw new ConfigError(
          `queue: unknown subcommand "${sub}" (list, show, summary, flush, delete, hold, release, requeue)`,
        );
    }
  } catch (e) {
    if (e instanceof UnknownMessageError) {
      console.error(`carrier: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** The ids an action names, or every queued message with --all (hold and release). */
async function targets(
  spool: Spool,
  action: string,
  ids: string[],
  opts: { all?: boolean },
): Promise<string[]> {
  if (opts.all && (action === "hold" || action === "release")) {
    if (ids.length > 0) throw new ConfigError(`queue ${action}: give ids or --all, not both`);
    const { records } = await spool.list();
    return records.filter((r) => (action === "hold") !== (r.held === true)).map((r) => r.id);
  }
  if (opts.all) throw new ConfigError(`queue ${action}: --all is for hold and release only`);
  if (ids.length === 0) {
    const all = action === "hold" || action === "release" ? " (or --all)" : "";
    throw new ConfigError(`queue ${action}: give at least one message id${all}`);
  }
  return ids;
}

function expectArgs(args: string[], n: number, usage: string): void {
  if (args.length !== n) throw new ConfigError(`usage: carrier ${usage}`);
}

async function openExisting(dir: string): Promise<Spool> {
  try {
    const stat = await Deno.stat(join(dir, "queue"));
    if (!stat.isDirectory) throw new Error("not a directory");
  } catch {
    throw new ConfigError(`spool: no queue at ${dir} (is --spool right?)`);
  }
  return await Spool.open(dir);
}

/** "45s", "3m", "1h05m", "2h", "2d3h": a short age for people. */
export function shortDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) {
    const minutes = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)}h${minutes ? `${String(minutes).padStart(2, "0")}m` : ""}`;
  }
  const hours = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)}d${hours ? `${hours}h` : ""}`;
}

function describeRecipients(record: QueueRecord): string[] {
  return record.recipients.map((r) =>
    `    ${r.status.padEnd(9)} <${r.address}>${r.response ? `  ${r.response}` : ""}`
  );
}

async function list(spool: Spool, json: boolean): Promise<number> {
  const { records, problems } = await spool.list();
  if (json) {
    console.log(JSON.stringify({ messages: records, problems }, null, 2));
    return problems.length > 0 ? 1 : 0;
  }
  const now = Date.now();
  const server = await readServerState(spool.dir);
  if (records.length === 0) console.log("queue is empty");
  for (const r of records) {
    console.log(
      `${r.id}  ${r.kind === "bounce" ? "bounce  " : ""}age ${
        shortDuration(now - Date.parse(r.receivedAt))
      }  ` +
        `${r.size} bytes  from <${r.sender}>  attempts ${r.attempts}  next ${
          nextAttempt(r, server, now)
        }`,
    );
    for (const line of describeRecipients(r)) console.log(line);
    if (r.lastError) console.log(`    last error: ${r.lastError}`);
  }
  if (records.length > 0) {
    console.log(`${records.length} message${records.length === 1 ? "" : "s"}`);
  }
  for (const p of problems) console.error(`carrier: ${p}`);
  return problems.length > 0 ? 1 : 0;
}

/** When, or why not, a message will be tried: the `next` column of `queue list`. */
function nextAttempt(r: QueueRecord, server: ServerState | undefined, now: number): string {
  if (!r.recipients.some((x) => x.status === "pending")) return "- (reports being queued)";
  if (r.held) return `held (carrier queue release ${r.id})`;
  if (server?.mode === "hold") return "never: hold mode (the server has no upstream)";
  const at = Date.parse(r.nextAttemptAt);
  const until = pausedUntil(server, now);
  if (until && at <= Date.parse(until)) {
    const error = server?.pauseError ? `: ${server.pauseError}` : "";
    return `after the upstream pause, in ${shortDuration(Date.parse(until) - now)}${error}`;
  }
  const when = at <= now ? "now" : `in ${shortDuration(at - now)}`;
  return server ? when : `${when} (no server running)`;
}

async function summary(spool: Spool, json: boolean): Promise<number> {
  const { records, problems } = await spool.list();
  const s = summarize(records, await readServerState(spool.dir), Date.now());
  console.log(json ? JSON.stringify({ ...s, problems }, null, 2) : renderSummary(s));
  for (const p of problems) if (!json) console.error(`carrier: ${p}`);
  return problems.length > 0 ? 1 : 0;
}

async function show(spool: Spool, id: string, json: boolean): Promise<number> {
  const opened = await spool.open(id);
  const record = opened.record;
  const bytes = new Uint8Array(await new Response(messageStream(opened)).arrayBuffer());
  if (json) {
    const message = new TextDecoder("utf-8").decode(bytes);
    console.log(JSON.stringify({ ...record, message }, null, 2));
    return 0;
  }
  console.log(`id:          ${record.id}${record.kind === "bounce" ? " (bounce)" : ""}`);
  console.log(`from:        <${record.sender}>`);
  console.log(
    `received:    ${record.receivedAt} from ${record.helo} [${record.client.address}] ${record.protocol}`,
  );
  if (record.user) console.log(`user:        ${record.user}`);
  console.log(
    `size:        ${record.size} bytes${record.smtputf8 ? ", SMTPUTF8" : ""}, ${record.body}`,
  );
  const next = nextAttempt(record, await readServerState(spool.dir), Date.now());
  console.log(`attempts:    ${record.attempts}, next ${next} (${record.nextAttemptAt})`);
  if (record.lastError) console.log(`last error:  ${record.lastError}`);
  console.log("recipients:");
  for (const line of describeRecipients(record)) console.log(line);
  console.log("");
  await Deno.stdout.write(bytes);
  return 0;
}

async function flush(spool: Spool, json: boolean): Promise<number> {
  const { records } = await spool.list();
  const count = records.filter((r) => r.recipients.some((x) => x.status === "pending")).length;
  // Records are not rewritten here (that could race a running delivery): the server
  // polls for this file, and a server that starts later honours it too.
  await spool.requests.askFlush();
  if (json) console.log(JSON.stringify({ flushRequested: count }));
  else {
    console.log(
      `flush requested: ${count} message${count === 1 ? "" : "s"} will be tried as soon as ` +
        "a server with an upstream sees the request",
    );
  }
  return 0;
}
