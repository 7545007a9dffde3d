/**
 * CHUNKING (RFC 3030): the `BDAT size [LAST]` command and the reader that takes exactly
 * `size` octets of message data, with no dot-stuffing and no end marker to look for.
 * Pure: the server hands the spans to the spool writer.
 */

import type { ScanResult } from "./data.ts";
import { type Reply, reply } from "./reply.ts";

/** One BDAT command: how many octets follow and whether they end the message. */
export interface BdatCommand {
  size: number;
  last: boolean;
}

/** Parses the arguments of BDAT: a chunk size (digits only) and an optional LAST. */
export function parseBdat(args: string): BdatCommand | { error: Reply } {
  const m = /^(\d{1,15})(?: +(LAST))? *$/i.exec(args);
  if (!m) return { error: reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]") };
  return { size: Number(m[1]), last: m[2] !== undefined };
}

/**
 * Reads one chunk: exactly `size` octets, whatever they contain (CRLF, ".", NUL). Counts
 * the message's size across chunks and stops keeping bytes once it passes `maxSize`.
 */
export class ChunkReader {
  #remaining: number;
  #size: number;
  #tooBig: boolean;

  /**
   * @param chunk the BDAT command
   * @param before message octets of earlier chunks (for the size limit)
   * @param maxSize the most message octets accepted
   */
  constructor(readonly chunk: BdatCommand, before: number, readonly maxSize: number) {
    this.#remaining = chunk.size;
    this.#size = before;
    this.#tooBig = before > maxSize;
  }

  /** Message octets so far, this chunk's included (counted even past the limit). */
  get size(): number {
    return this.#size;
  }

  /** The message has grown past `maxSize`: the rest of the chunk is read and dropped. */
  get tooBig(): boolean {
    return this.#tooBig;
  }

  /** True once the whole chunk has been read. */
  get done(): boolean {
    return this.#remaining === 0;
  }

  /** Takes the chunk's octets from `data[start..]`; `end` is where the next command starts. */
  scan(data: Uint8Array, start = 0): ScanResult {
    const n = Math.min(this.#remaining, data.length - start);
    this.#remaining -= n;
    const spans: Uint8Array[] = [];
    if (n > 0) {
      const room = this.#tooBig ? 0 : Math.max(0, this.maxSize - this.#size);
      if (n > room) this.#tooBig = true;
      else spans.push(data.subarray(start, start + n));
      this.#size += n;
    }
    return { spans, end: this.#remaining === 0 ? start + n : -1 };
  }
}
