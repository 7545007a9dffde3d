/**
 * `carrier queue list|show|flush|delete`: the operator's view of the spool, for
 * people by default and as JSON with --json. Works whether or not a server runs:
 * it only reads and atomically rewrites records, like the server does.
 */

import { join } from "node:path";
import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import type { QueueRecord } from "./record.ts";
import { messageStream } from "./message_reader.ts";
import { pathExists, Spool, UnknownMessageError } from "./spool.ts";

/** Runs a queue subcommand; returns the exit code. */
export async function runQueueCommand(
  config: Config,
  args: string[],
  opts: { json: boolean },
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
      case "delete":
        if (rest.length === 0) throw new ConfigError("queue delete: give at least one message id");
        return await remove(spool, rest, opts.json);
      default:
        throw new ConfigError(`queue: unknown subcommand "${sub}" (list, show, flush, delete)`);
    }
  } catch (e) {
    if (e instanceof UnknownMessageError) {
      console.error(`carrier: ${e.message}`);
      return 1;
    }
    throw e;
  }
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
  if (records.length === 0) console.log("queue is empty");
  for (const r of records) {
    const pending = r.recipients.filter((x) => x.status === "pending").length;
    const next = pending === 0
      ? "-"
      : Date.parse(r.nextAttemptAt) <= now
      ? "now"
      : `in ${shortDuration(Date.parse(r.nextAttemptAt) - now)}`;
    console.log(
      `${r.id}  ${r.kind === "bounce" ? "bounce  " : ""}age ${
        shortDuration(now - Date.parse(r.receivedAt))
      }  ` +
        `${r.size} bytes  from <${r.sender}>  attempts ${r.attempts}  next ${next}`,
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
  console.log(`attempts:    ${record.attempts}, next ${record.nextAttemptAt}`);
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

async function remove(spool: Spool, ids: string[], json: boolean): Promise<number> {
  for (const id of ids) await spool.read(id); // every id must exist before anything is removed
  const lock = await spool.tryLock();
  if (lock) {
    // No server owns the spool: remove directly.
    try {
      for (const id of ids) await spool.remove(id);
    } finally {
      lock.close();
    }
    report(ids, [], json);
    return 0;
  }
  // A server runs and may be delivering one of them: it applies the request after
  // that attempt, so nothing races its records. Wait a little for it to happen.
  for (const id of ids) await spool.requests.askDelete(id);
  const pending = new Set(ids);
  for (let i = 0; i < 50 && pending.size > 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    for (const id of [...pending]) {
      if (!(await pathExists(spool.messagePath(id)))) pending.delete(id);
    }
  }
  report(ids.filter((id) => !pending.has(id)), [...pending], json);
  return 0;
}

function report(deleted: string[], requested: string[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ deleted, requested }));
    return;
  }
  for (const id of deleted) console.log(`deleted ${id}`);
  for (const id of requested) {
    console.log(`delete of ${id} requested: the server removes it when its delivery attempt ends`);
  }
}
