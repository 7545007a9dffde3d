/**
 * Reading what a spool holds, for tests: a message's current record and its exact bytes,
 * through the spool's own reader (`Spool.open` + `messageStream`), so no test parses the
 * `CARRIER1 {record}` header line of queue/ID.msg itself.
 */

import { join } from "node:path";
import type { QueueRecord } from "../../src/queue/record.ts";
import { messageStream } from "../../src/queue/message_reader.ts";
import { Spool } from "../../src/queue/spool.ts";

const latin1 = new TextDecoder("latin1");

/** A queued message: its id, current record, exact bytes and those bytes as latin1 text. */
export interface StoredMessage {
  id: string;
  record: QueueRecord;
  bytes: Uint8Array;
  text: string;
}

/** The record and the exact message bytes (without the header line) of one queued message. */
export async function readStored(
  spool: Spool,
  id: string,
): Promise<{ record: QueueRecord; bytes: Uint8Array }> {
  const opened = await spool.open(id);
  const bytes = new Uint8Array(await new Response(messageStream(opened)).arrayBuffer());
  return { record: opened.record, bytes };
}

/** The exact bytes of one queued message (what delivery sends), without the header line. */
export async function storedBytes(spool: Spool, id: string): Promise<Uint8Array> {
  return (await readStored(spool, id)).bytes;
}

/** Every message queued in the spool at `dir` (a running server's too), oldest first. */
export async function storedMessages(dir: string): Promise<StoredMessage[]> {
  const spool = await Spool.open(dir);
  try {
    const { records, problems } = await spool.list();
    if (problems.length > 0) throw new Error(`unreadable queue entries: ${problems.join("; ")}`);
    const out: StoredMessage[] = [];
    for (const { id } of records) {
      const { record, bytes } = await readStored(spool, id);
      out.push({ id, record, bytes, text: latin1.decode(bytes) });
    }
    return out;
  } finally {
    spool.close();
  }
}

/** Ids of the messages in the spool at `dir` (one `ID.msg` each), sorted. */
export async function queuedIds(dir: string): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const e of Deno.readDir(join(dir, "queue"))) {
      if (e.name.endsWith(".msg")) ids.push(e.name.slice(0, -4));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return ids.sort();
}
