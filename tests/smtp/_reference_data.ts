/**
 * Test-only reference for reading DATA: the line-based reader Carrier used before the
 * chunk scanner (src/smtp/data.ts `DataReader` and the `LineSplitter.push` it was fed by,
 * as of commit 4e22a4c), kept verbatim in behaviour so that `DataScanner` can be checked
 * against it byte for byte. Not used by the server.
 */

import { concatBytes } from "../../src/bytes.ts";

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = new Uint8Array([CR, LF]);

/** One piece of input: a whole line, or a fragment of a line longer than the bound. */
export interface RefLine {
  bytes: Uint8Array;
  complete: boolean;
  start: boolean;
}

/** The old CRLF-only, length-bounded splitter (push a chunk, get its lines). */
export class RefLineSplitter {
  #pending: Uint8Array[] = [];
  #pendingLength = 0;
  #lineStarted = false;
  #heldCr = false;

  constructor(readonly maxLength: number) {}

  push(chunk: Uint8Array): RefLine[] {
    const out: RefLine[] = [];
    if (chunk.length === 0) return out;
    let pos = 0;
    if (this.#heldCr) {
      this.#heldCr = false;
      if (chunk[0] === LF) {
        this.#emit(out, true);
        pos = 1;
      } else {
        this.#append(out, new Uint8Array([CR]));
      }
    }
    while (pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        let end = chunk.length;
        if (chunk[end - 1] === CR) {
          end -= 1;
          this.#heldCr = true;
        }
        if (end > pos) this.#append(out, chunk.subarray(pos, end));
        break;
      }
      if (lf > pos && chunk[lf - 1] === CR) {
        this.#append(out, chunk.subarray(pos, lf - 1));
        this.#emit(out, true);
      } else {
        this.#append(out, chunk.subarray(pos, lf + 1));
      }
      pos = lf + 1;
    }
    return out;
  }

  #append(out: RefLine[], bytes: Uint8Array): void {
    let rest = bytes;
    while (this.#pendingLength + rest.length > this.maxLength) {
      const room = Math.max(0, this.maxLength - this.#pendingLength);
      if (room > 0) {
        this.#pending.push(rest.slice(0, room));
        this.#pendingLength += room;
      }
      rest = rest.subarray(room);
      this.#emit(out, false);
    }
    if (rest.length > 0) {
      this.#pending.push(rest.slice());
      this.#pendingLength += rest.length;
    }
  }

  #emit(out: RefLine[], complete: boolean): void {
    const bytes = this.#pending.length === 1 ? this.#pending[0] : concatBytes(this.#pending);
    out.push({ bytes, complete, start: !this.#lineStarted });
    this.#pending = [];
    this.#pendingLength = 0;
    this.#lineStarted = !complete;
  }
}

/** The old per-line DATA reader: dot-unstuffing, size, and the "." line as the end. */
export class RefDataReader {
  #size = 0;
  #tooBig = false;

  constructor(readonly maxSize: number) {}

  get size(): number {
    return this.#size;
  }

  get tooBig(): boolean {
    return this.#tooBig;
  }

  push(line: RefLine): { parts: Uint8Array[]; end: boolean } {
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

/**
 * The old path as one object with the scanner's shape: feed chunks, get the message
 * bytes and, once the "." line is read, the offset just after it in that chunk. Each
 * chunk is fed to the splitter in pieces that end right after an LF, so the line that
 * ends the data is known to end exactly where its piece ends (the splitter's output
 * does not depend on where chunks are cut).
 */
export class ReferenceData {
  readonly splitter: RefLineSplitter;
  readonly reader: RefDataReader;
  #ended = false;

  constructor(maxSize: number, maxLength = 64 * 1024) {
    this.splitter = new RefLineSplitter(maxLength);
    this.reader = new RefDataReader(maxSize);
  }

  get size(): number {
    return this.reader.size;
  }

  get tooBig(): boolean {
    return this.reader.tooBig;
  }

  scan(chunk: Uint8Array, start = 0): { parts: Uint8Array[]; end: number } {
    if (this.#ended) throw new Error("reference: data already ended");
    const parts: Uint8Array[] = [];
    let pos = start;
    while (pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      const pieceEnd = lf === -1 ? chunk.length : lf + 1;
      for (const line of this.splitter.push(chunk.subarray(pos, pieceEnd))) {
        const out = this.reader.push(line);
        parts.push(...out.parts);
        if (out.end) {
          this.#ended = true;
          return { parts, end: pieceEnd };
        }
      }
      pos = pieceEnd;
    }
    return { parts, end: -1 };
  }
}
