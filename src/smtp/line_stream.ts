/**
 * CRLF-only, length-bounded line splitting over raw bytes.
 *
 * A bare LF or a bare CR never ends a line (that is what blocks SMTP smuggling),
 * and no line is ever buffered past `maxLength`: longer lines come out in
 * fragments, so memory stays bounded whatever a client sends.
 */

import { concatBytes } from "../bytes.ts";

/** One piece of input: a whole line, or a fragment of a line longer than the bound. */
export interface Line {
  /** The bytes of the line or fragment, without the terminating CRLF. */
  bytes: Uint8Array;
  /** True when this piece ends with CRLF; false for a fragment that more bytes of the same line follow. */
  complete: boolean;
  /** True when this piece starts a line (the first fragment of a long line, or a whole line). */
  start: boolean;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * The pure splitter behind `LineStream`: push chunks, get lines back. The server
 * drives it directly so that it knows exactly which bytes were consumed when the
 * transport changes under a live session (STARTTLS).
 */
export class LineSplitter {
  #pending: Uint8Array[] = [];
  #pendingLength = 0;
  #lineStarted = false;
  /** A CR was the last byte of the previous chunk and is not yet known to be part of CRLF. */
  #heldCr = false;

  #maxLength = 0;

  /**
   * @param maxLength the most bytes a line (without CRLF) may have before it is split into fragments
   * @param discardOverlong emit only the first fragment of an overlong line, then drop its bytes
   *   up to the CRLF (which ends it as an empty complete piece): memory and garbage stay flat
   *   whatever a client sends, for readers that refuse such lines anyway (SMTP commands)
   */
  constructor(maxLength: number, readonly discardOverlong = false) {
    this.maxLength = maxLength;
  }

  /** The line bound; the server raises it for DATA, where long lines are legal content. */
  get maxLength(): number {
    return this.#maxLength;
  }

  set maxLength(value: number) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError("maxLength must be >= 1");
    this.#maxLength = value;
  }

  /**
   * True while a line has begun and not ended: bytes are held, or a fragment of it
   * went out (with `discardOverlong`, nothing more of it is held, yet it goes on).
   */
  get inLine(): boolean {
    return this.#lineStarted || this.#pendingLength > 0 || this.#heldCr;
  }

  /** Bytes held waiting for a line end (never more than maxLength + 1). */
  get buffered(): number {
    return this.#pendingLength + (this.#heldCr ? 1 : 0);
  }

  /** Splits a chunk; returns the lines and fragments it completes, in order. */
  push(chunk: Uint8Array): Line[] {
    const out: Line[] = [];
    let pos = 0;
    while (pos < chunk.length) pos = this.take(chunk, pos, out);
    return out;
  }

  /**
   * Consumes `chunk` from `pos` up to and including the next line end (or to its
   * end), appending what that completes to `out`; returns where it stopped. A
   * complete line is always the last thing appended, so a caller can switch to
   * reading message data right after a DATA line.
   */
  take(chunk: Uint8Array, pos: number, out: Line[]): number {
    if (pos >= chunk.length) return chunk.length;
    if (this.#heldCr) {
      this.#heldCr = false;
      if (chunk[pos] === LF) {
        this.#emit(out, true);
        return pos + 1;
      }
      this.#append(out, new Uint8Array([CR]));
    }
    while (pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        // No line end in the rest of the chunk; hold a trailing CR apart, it may pair with the next chunk's LF.
        let end = chunk.length;
        if (chunk[end - 1] === CR) {
          end -= 1;
          this.#heldCr = true;
        }
        if (end > pos) this.#append(out, chunk.subarray(pos, end));
        return chunk.length;
      }
      if (lf > pos && chunk[lf - 1] === CR) {
        this.#append(out, chunk.subarray(pos, lf - 1));
        this.#emit(out, true);
        return lf + 1;
      }
      // A bare LF is data: keep it in the line.
      this.#append(out, chunk.subarray(pos, lf + 1));
      pos = lf + 1;
    }
    return pos;
  }

  /** Drops everything buffered (used when plaintext must not survive a STARTTLS). */
  reset(): void {
    this.#pending = [];
    this.#pendingLength = 0;
    this.#lineStarted = false;
    this.#heldCr = false;
  }

  /** Returns the unterminated rest at end of input, if any (as an incomplete piece). */
  flush(): Line[] {
    const out: Line[] = [];
    if (this.#heldCr) {
      this.#heldCr = false;
      this.#append(out, new Uint8Array([CR]));
    }
    if (this.#pendingLength > 0) this.#emit(out, false);
    return out;
  }

  #append(out: Line[], bytes: Uint8Array): void {
    let rest = bytes;
    // The rest of a line already too long: its bytes are nobody's business (commands).
    if (this.discardOverlong && this.#lineStarted) return;
    while (this.#pendingLength + rest.length > this.maxLength) {
      // After maxLength was lowered (DATA back to commands) more than maxLength may be
      // pending: there is no room, so emit it as it is rather than lose bytes.
      const room = Math.max(0, this.maxLength - this.#pendingLength);
      if (room > 0) {
        this.#pending.push(rest.slice(0, room));
        this.#pendingLength += room;
      }
      rest = rest.subarray(room);
      this.#emit(out, false);
      if (this.discardOverlong) return;
    }
    if (rest.length > 0) {
      // Copy: the caller's chunk buffer may be reused by the transport.
      this.#pending.push(rest.slice());
      this.#pendingLength += rest.length;
    }
  }

  #emit(out: Line[], complete: boolean): void {
    const bytes = this.#pending.length === 1 ? this.#pending[0] : concatBytes(this.#pending);
    out.push({ bytes, complete, start: !this.#lineStarted });
    this.#pending = [];
    this.#pendingLength = 0;
    this.#lineStarted = !complete;
  }
}

/** A `TransformStream` of raw bytes into bounded CRLF lines, for streaming pipelines. */
export class LineStream extends TransformStream<Uint8Array, Line> {
  constructor(maxLength: number) {
    const splitter = new LineSplitter(maxLength);
    super({
      transform(chunk, controller) {
        for (const line of splitter.push(chunk)) controller.enqueue(line);
      },
      flush(controller) {
        for (const line of splitter.flush()) controller.enqueue(line);
      },
    });
  }
}
