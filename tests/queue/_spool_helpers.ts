/**
 * Shared setup for the spool tests: a spool in a temp dir, deterministic bytes, and
 * committed messages.
 */
import { ok } from "node:assert/strict";
import { join } from "node:path";
import { newQueueId, type NewRecordFields } from "../../src/queue/record.ts";
import { Spool } from "../../src/queue/spool.ts";
import { storeMessage } from "./_helpers.ts";

export async function withSpool(fn: (spool: Spool, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-spool-test-" });
  const spool = await Spool.open(join(dir, "spool"));
  try {
    await fn(spool, join(dir, "spool"));
  } finally {
    spool.close(); // the queue directory handle kept for its fsyncs
    await Deno.remove(dir, { recursive: true });
  }
}

export async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

/** Deterministic pseudo-random bytes (every byte value, CR, LF, NUL included). */
export function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The envelope fields of a new message (what the connection passes to createMessage). */
export const FIELDS: Omit<NewRecordFields, "id"> = {
  kind: "message",
  sender: "alice@example.com",
  recipients: ["bob@example.org", "carol@example.org"],
  smtputf8: false,
  body: "8BITMIME",
  client: { address: "127.0.0.1", port: 40000, tls: false },
  helo: "client.example.com",
  protocol: "ESMTP",
};

/** Writes and commits one message of the given bytes; returns its id. */
export async function store(spool: Spool, bytes: Uint8Array, id = newQueueId()): Promise<string> {
  return (await storeMessage(spool, bytes, { id })).id;
}

/** The header line and the rest of a stored file. */
export function splitFile(file: Uint8Array): { header: string; rest: Uint8Array } {
  const lf = file.indexOf(0x0a);
  ok(lf > 0, "the file has a header line");
  return { header: new TextDecoder().decode(file.subarray(0, lf)), rest: file.subarray(lf + 1) };
}
