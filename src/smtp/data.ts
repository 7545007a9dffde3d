/**
 * Reading the DATA section (RFC 5321 §4.5.2): dot-unstuffing on bytes and the one
 * true end of data, CRLF "." CRLF. Because the line splitter ends lines on CRLF
 * only, `\n.\n`, `\r\n.\n` and `\n.\r\n` are message content, never an end
 * (SMTP smuggling). Pure: the server hands the output to the spool writer.
 */

import type { Line } from "./line_stream.ts";

const DOT = 0x2e;
const CRLF = new Uint8Array([0x0d, 0x0a]);

/** What one piece of data input produced. */
export interface DataOutput {
  /** Bytes to append to the message, in order (empty once the size limit is passed). */
  parts: Uint8Array[];
  /** True when this piece was the terminating "." line. */
  end: boolean;
}

/** Tracks one message's data: unstuffing, size and the end marker. */
export class DataReader {
  #size = 0;
  #tooBig = false;

  /** @param maxSize the most message bytes (after unstuffing, without our Received:) accepted */
  constructor(readonly maxSize: number) {}

  /** Message bytes seen so far, counted even past the limit. */
  get size(): number {
    return this.#size;
  }

  /** True once the message has grown past `maxSize`: the rest is read and dropped. */
  get tooBig(): boolean {
    return this.#tooBig;
  }

  /** Consumes one line or fragment received in data state. */
  push(line: Line): DataOutput {
    let bytes = line.bytes;
    if (line.start && bytes.length > 0 && bytes[0] === DOT) {
      if (line.complete && bytes.length === 1) return { parts: [], end: true };
      bytes = bytes.subarray(1);
    }
    const added = bytes.length + (line.complete ? 2 : 0);
    this.#size += added;
    if (this.#size > this.maxSize) this.#tooBig = true;
    if (this.#tooBig) return { parts: [], end: false };
    const parts = line.complete ? [bytes, CRLF] : [bytes];
    return { parts, end: false };
  }
}
