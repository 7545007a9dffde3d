/**
 * Reading a stored message file: the `CARRIER1 {record}` header line, the bytes
 * read with it, and the rest as a stream. The spool decides which record wins.
 */

import { HEADER_MAGIC, MAX_HEADER, type QueueRecord } from "./record.ts";

/** Bytes read at once when a message is opened: the header and, for small messages, all of it. */
export const READ_AHEAD = 16 * 1024;

/** A stored message opened for reading: its record and its bytes. */
export interface OpenedMessage {
  /** The current record; `size` is the message's byte count. */
  record: QueueRecord;
  /** The first message bytes, read with the header (all of them for a small message). */
  head: Uint8Array;
  /** Positioned after `head`; the caller closes it. */
  file: Deno.FsFile;
  /** Where in the file the bytes after `head` start (to read them again). */
  restAt?: number;
}

/**
 * Reads in flight on each file, chained: a stream cancelled mid-read (a transaction that
 * failed) still finishes its read before the next stream seeks, so none reads another's bytes.
 */
const fileQueues = new WeakMap<Deno.FsFile, Promise<unknown>>();

/** Reads into `buffer` from `position` once every earlier read on `file` has finished. */
function readAt(file: Deno.FsFile, position: number, buffer: Uint8Array): Promise<number | null> {
  const read = (fileQueues.get(file) ?? Promise.resolve()).catch(() => {}).then(async () => {
    await file.seek(position, Deno.SeekMode.Start);
    return await file.read(buffer);
  });
  fileQueues.set(file, read);
  return read;
}

/**
 * The bytes of an opened message (head, then the rest of the file). It closes the file at
 * the end, unless `again`: then the file stays open and each stream reads the rest from
 * `restAt` at its own position, so one opened message can be sent several times (split
 * recipients, failover), however an earlier stream ended.
 */
export function messageStream(
  opened: OpenedMessage,
  opts: { again?: boolean } = {},
): ReadableStream<Uint8Array> {
  const { file, head } = opened;
  let first = head.length > 0;
  const again = opts.again === true && opened.restAt !== undefined;
  let position = opened.restAt ?? 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        controller.enqueue(head);
        return;
      }
      const buffer = new Uint8Array(64 * 1024);
      const n = again ? await readAt(file, position, buffer) : await file.read(buffer);
      if (n === null) {
        if (!opts.again) file.close();
        controller.close();
        return;
      }
      position += n;
      controller.enqueue(buffer.subarray(0, n));
    },
    cancel() {
      if (!opts.again) file.close();
    },
  });
}

/**
 * Reads the `CARRIER1 {json}\n` header of a message file, and whatever follows it
 * in the same read. A file without it (from an older Carrier, whose record is
 * always the ID.json beside it) starts at offset 0. `parse` false: only skip it.
 */
export async function readHeader(
  file: Deno.FsFile,
  path: string,
  parse: boolean,
): Promise<{ header: unknown; offset: number; buffer: Uint8Array; used: number }> {
  let buffer = new Uint8Array(READ_AHEAD);
  let used = 0;
  for (;;) {
    const n = await file.read(buffer.subarray(used));
    if (n !== null) used += n;
    if (used >= HEADER_MAGIC.length || n === null) break;
  }
  for (let i = 0; i < HEADER_MAGIC.length; i++) {
    if (buffer[i] !== HEADER_MAGIC[i]) return { header: undefined, offset: 0, buffer, used };
  }
  let searched = HEADER_MAGIC.length;
  for (;;) {
    const lf = buffer.subarray(searched, used).indexOf(0x0a);
    if (lf !== -1) {
      const end = searched + lf;
      if (!parse) return { header: undefined, offset: end + 1, buffer, used };
      const text = new TextDecoder().decode(buffer.subarray(HEADER_MAGIC.length, end));
      try {
        return { header: JSON.parse(text), offset: end + 1, buffer, used };
      } catch (e) {
        throw new Error(`${path}: invalid record header: ${(e as Error).message}`);
      }
    }
    searched = used;
    if (used === buffer.length) {
      if (buffer.length >= MAX_HEADER) throw new Error(`${path}: record header too long`);
      const bigger = new Uint8Array(buffer.length * 4);
      bigger.set(buffer);
      buffer = bigger;
    }
    const n = await file.read(buffer.subarray(used));
    if (n === null) throw new Error(`${path}: truncated record header`);
    used += n;
  }
}
