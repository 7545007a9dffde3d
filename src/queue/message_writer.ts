/**
 * Writes one incoming message into a spare file: the record header, then the
 * bytes as they arrive, in large writes. Nothing is visible in the queue until `commit`
 * has made the file durable and renamed it into place.
 */

import type { QueueRecord } from "./record.ts";
import { encodeHeader } from "./record.ts";
import { BufferPool } from "../bytes.ts";

/** Write buffers kept for the next message. */
const buffers = new BufferPool(128 * 1024, 32);

/** What the writer needs from the spool to publish a finished file. */
export interface Publisher {
  /** Renames a synced file into the queue and waits until the directory entry is durable. */
  publish(id: string, path: string): Promise<void>;
  /** Takes back the file of a message that will not be committed. */
  discard(path: string): void;
}

/** Writes one incoming message; nothing is visible in the queue until `commit`. */
export class MessageWriter {
  #file: Deno.FsFile;
  #buffer = buffers.take();
  #used = 0;
  #size = 0;
  #closed = false;
  #aborted = false;
  #headerLength: number;
  /** Something was written to the file before commit (the message did not fit the buffer). */
  #flushed = false;
  #small: Uint8Array | undefined;

  constructor(
    private readonly publisher: Publisher,
    readonly record: QueueRecord,
    file: Deno.FsFile,
    private readonly path: string,
  ) {
    this.#file = file;
    const header = encodeHeader(record);
    if (header.length > this.#buffer.length) this.#buffer = new Uint8Array(header.length);
    this.#buffer.set(header);
    this.#used = header.length;
    this.#headerLength = header.length;
  }

  /** The queue id. */
  get id(): string {
    return this.record.id;
  }

  /** After commit: the whole message when it fitted the write buffer (no need to read it back). */
  get bytes(): Uint8Array | undefined {
    return this.#small;
  }

  /** Message bytes written so far (without the header). */
  get size(): number {
    return this.#size;
  }

  /** Appends bytes: copied into the buffer (the caller may reuse its own), written when full. */
  write(bytes: Uint8Array): void {
    this.#size += bytes.length;
    if (this.#used + bytes.length <= this.#buffer.length) {
      this.#buffer.set(bytes, this.#used);
      this.#used += bytes.length;
      return;
    }
    this.#flush();
    if (bytes.length >= this.#buffer.length) {
      this.#flushed = true;
      writeAll(this.#file, bytes);
      return;
    }
    this.#buffer.set(bytes, 0);
    this.#used = bytes.length;
  }

  /** Makes the message durable and visible: fdatasync, rename, then the shared directory fsync. */
  async commit(): Promise<void> {
    this.#small = this.#flushed ? undefined : this.#buffer.slice(this.#headerLength, this.#used);
    this.#flush();
    this.#release();
    await this.#file.syncData();
    this.#file.close();
    this.#closed = true;
    await this.publisher.publish(this.id, this.path);
  }

  /** Returns the write buffer for reuse; nothing more is written after this. */
  #release(): void {
    buffers.give(this.#buffer);
    this.#buffer = new Uint8Array(0);
  }

  /** Discards the message (client went away, too big, or a write failed). */
  async abort(): Promise<void> {
    // Twice is harmless: the file given back may already be another message's.
    if (this.#aborted) return;
    this.#aborted = true;
    if (this.#closed) {
      // Failed in commit (fsync or rename): the file may be half-published; drop it.
      await Deno.remove(this.path).catch(() => {});
      return;
    }
    this.#closed = true;
    this.#release();
    try {
      this.#file.close();
    } catch { /* already closed */ }
    this.publisher.discard(this.path);
  }

  #flush(): void {
    if (this.#used === 0) return;
    this.#flushed = true;
    writeAll(this.#file, this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

/**
 * Writes all of `bytes` (a write may be partial). Synchronous: a write into the
 * page cache takes microseconds, less than handing it to a worker thread and back;
 * only the fsyncs, which wait for the disk, are asynchronous.
 */
export function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}
