/**
 * Reading the DATA section (RFC 5321 §4.5.2) a received chunk at a time: dot-
 * unstuffing and the one true end of data, CRLF "." CRLF, found by scanning the
 * bytes, with no per-line objects or copies. Only CRLF starts a line, so `\n.\n`,
 * `\r\n.\n` and `\n.\r\n` are message content, never an end (SMTP smuggling).
 * Pure: the server hands the spans to the spool writer.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_ONLY = new Uint8Array([CR]);

// Where the scan stands between chunks.
/** At the start of a line (after CRLF, or at the start of the data). */
const LINE_START = 0;
/** Inside a line; the previous byte was not CR. */
const MID = 1;
/** Inside a line; the previous byte was CR (a line ends if LF follows). */
const AFTER_CR = 2;
/** A line began with "." (dropped: stuffed, or the start of the end marker). */
const DOT_SEEN = 3;
/** "." CR at the start of a line: the end if LF follows; the CR is held back meanwhile. */
const DOT_CR = 4;

/** What one chunk produced. */
export interface ScanResult {
  /** Message bytes to append, in order: views into the chunk (copy before it is reused). */
  spans: Uint8Array[];
  /** Offset just after the terminating ".\r\n" in the chunk, or -1 if the data goes on. */
  end: number;
}

/** Tracks one message's data: unstuffing, size and the end marker. */
export class DataScanner {
  #at = LINE_START;
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

  /** Scans `chunk` from `start`; stops right after the end marker if it is in the chunk. */
  scan(chunk: Uint8Array, start = 0): ScanResult {
    const spans: Uint8Array[] = [];
    const keep = (from: number, to: number) => {
      if (to > from) this.#add(spans, chunk.subarray(from, to));
    };
    let pos = start;
    let from = start; // start of the span not yet kept
    const len = chunk.length;
    while (pos < len) {
      switch (this.#at) {
        case LINE_START:
          if (chunk[pos] === DOT) {
            keep(from, pos);
            pos++;
            from = pos;
            this.#at = DOT_SEEN;
          } else {
            this.#at = MID;
          }
          break;
        case DOT_SEEN:
          if (chunk[pos] === CR) {
            pos++;
            from = pos;
            this.#at = DOT_CR;
          } else {
            this.#at = MID;
          }
          break;
        case DOT_CR:
          if (chunk[pos] === LF) {
            return { spans, end: pos + 1 };
          }
          // "." CR then not LF: a stuffed line whose content starts with a bare CR.
          this.#add(spans, CR_ONLY);
          this.#at = MID;
          break;
        case AFTER_CR:
          if (chunk[pos] === LF) {
            pos++;
            this.#at = LINE_START;
          } else {
            this.#at = MID;
          }
          break;
        case MID: {
          const cr = chunk.indexOf(CR, pos);
          if (cr === -1) {
            pos = len;
          } else if (cr + 1 < len) {
            if (chunk[cr + 1] === LF) {
              pos = cr + 2;
              this.#at = LINE_START;
            } else {
              pos = cr + 1;
            }
          } else {
            pos = len;
            this.#at = AFTER_CR;
          }
          break;
        }
      }
    }
    keep(from, len);
    return { spans, end: -1 };
  }

  #add(spans: Uint8Array[], bytes: Uint8Array): void {
    this.#size += bytes.length;
    if (this.#size > this.maxSize) this.#tooBig = true;
    if (!this.#tooBig) spans.push(bytes);
  }
}
