/**
 * Header hygiene at delivery (Postfix's `always_add_missing_headers`): a message without
 * `Message-ID:` or `Date:` gets them, right after Carrier's own `Received:` field. They are
 * derived from the queue record (id, arrival time), so every attempt and every upstream sends
 * the same message. Anything unclear leaves the message exactly as received. Pure: no I/O.
 */

import type { QueueRecord } from "../queue/record.ts";
import { rfc5322Date } from "../smtp/received.ts";

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const COLON = 0x3a;

const encoder = new TextEncoder();

/** Header fields to insert into a message: `bytes` go in at byte offset `at`. */
export interface HeaderAddition {
  at: number;
  bytes: Uint8Array;
}

/** Why nothing is added although a field may be missing (a known limit, worth a log line). */
export type HygieneSkip =
  | "header-beyond-head"
  | "bare-line-break"
  | "no-received"
  | "received-unterminated";

/** What a look at the header section found: the fields to add (if any), or why none can be. */
export type HygieneDecision =
  | { kind: "add"; addition: HeaderAddition }
  | { kind: "complete" }
  | { kind: "skip"; reason: HygieneSkip };

/** What the added fields are made of: the same for every attempt of one message. */
export interface HygieneSource {
  /** The queue id (the Message-ID's left part). */
  id: string;
  /** The configured host name (the Message-ID's right part). */
  hostname: string;
  /** When the message was received (the Date:). */
  receivedAt: Date;
}

/**
 * What delivery adds to a queued message whose first bytes are `head`. A bounce is Carrier's
 * own message and has both fields already: nothing is added to it.
 */
export function hygieneFor(
  record: QueueRecord,
  head: Uint8Array,
  hostname: string,
): HygieneDecision {
  if (record.kind === "bounce") return { kind: "complete" };
  return decideHeaders(head, head.length === record.size, {
    id: record.id,
    hostname,
    receivedAt: new Date(record.receivedAt),
  });
}

/**
 * Looks at the header section in `head` (the first bytes of the message; `whole` when they
 * are all of it) and says which of Message-ID and Date to add. The header section ends at the
 * first empty line (CRLF CRLF), or at the end of a message that has no body. Fields count
 * by name (case-insensitive) at the start of a line, never inside a folded continuation.
 * Nothing is added when the section's end is not in `head` (a field might follow), when the
 * section holds a bare CR or LF (readers disagree on its lines), or when the message does not
 * start with a `Received:` field (not a message Carrier received).
 */
export function decideHeaders(
  head: Uint8Array,
  whole: boolean,
  source: HygieneSource,
): HygieneDecision {
  if (!whole && lineEnd(head, 0) === -1) return skip("header-beyond-head");
  if (!startsWithField(head, 0, "received")) return skip("no-received");
  let insertAt = -1;
  let hasMessageId = false;
  let hasDate = false;
  // Unsure where the fields are: add nothing (a skip to note, unless nothing is missing).
  const giveUp = (reason: HygieneSkip): HygieneDecision =>
    hasMessageId && hasDate ? { kind: "complete" } : skip(reason);
  for (let pos = 0;;) {
    if (pos === head.length) {
      // The data ends after a CRLF: a message without a body if `head` is all of it.
      if (!whole) return giveUp("header-beyond-head");
      if (insertAt === -1) insertAt = pos;
      break;
    }
    let end = lineEnd(head, pos);
    const last = end === -1;
    if (last) {
      // A last line without CRLF: the end of a body-less message, or the edge of `head`.
      if (!whole) return giveUp("header-beyond-head");
      end = head.length;
    }
    if (end === pos) {
      if (insertAt === -1) insertAt = pos; // the empty line that ends the header section
      break;
    }
    // The SMTP client sends a bare CR or LF as CRLF: upstream it ends a line, here it does not.
    if (hasLineBreak(head, pos, end)) return giveUp("bare-line-break");
    if (head[pos] !== SP && head[pos] !== TAB) {
      // The first field (Received:, maybe folded) ends where the next field starts.
      if (pos > 0 && insertAt === -1) insertAt = pos;
      hasMessageId ||= startsWithField(head, pos, "message-id");
      hasDate ||= startsWithField(head, pos, "date");
    }
    if (last) {
      // An unterminated continuation of Received: what follows it would join its line.
      if (insertAt === -1) return skip("received-unterminated");
      break;
    }
    pos = end + 2;
  }
  const fields: string[] = [];
  if (!hasMessageId) fields.push(`Message-ID: <${source.id}@${source.hostname}>\r\n`);
  if (!hasDate) fields.push(`Date: ${rfc5322Date(source.receivedAt)}\r\n`);
  if (fields.length === 0) return { kind: "complete" };
  return { kind: "add", addition: { at: insertAt, bytes: encoder.encode(fields.join("")) } };
}

function skip(reason: HygieneSkip): HygieneDecision {
  return { kind: "skip", reason };
}

/** The whole message with the addition in place (a new array; `bytes` is left as it is). */
export function withAddition(bytes: Uint8Array, addition: HeaderAddition): Uint8Array {
  const out = new Uint8Array(bytes.length + addition.bytes.length);
  out.set(bytes.subarray(0, addition.at), 0);
  out.set(addition.bytes, addition.at);
  out.set(bytes.subarray(addition.at), addition.at + addition.bytes.length);
  return out;
}

/** The message stream with the addition spliced in at its offset, however it is chunked. */
export function streamWithAddition(
  stream: ReadableStream<Uint8Array>,
  addition: HeaderAddition,
): ReadableStream<Uint8Array> {
  let seen = 0;
  let done = false;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (!done && seen + chunk.length >= addition.at) {
          const cut = addition.at - seen;
          if (cut > 0) controller.enqueue(chunk.subarray(0, cut));
          controller.enqueue(addition.bytes);
          if (cut < chunk.length) controller.enqueue(chunk.subarray(cut));
          done = true;
        } else {
          controller.enqueue(chunk);
        }
        seen += chunk.length;
      },
      flush(controller) {
        // Only for an empty stream with the addition at offset 0, which decideHeaders never gives.
        if (!done) controller.enqueue(addition.bytes);
      },
    }),
  );
}

/** Offset of the CR of the next CRLF at or after `from`, or -1. */
function lineEnd(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(CR, from); i !== -1; i = bytes.indexOf(CR, i + 1)) {
    if (bytes[i + 1] === LF) return i;
  }
  return -1;
}

/** A CR or LF in [from, to), a line without its CRLF: a bare line break. */
function hasLineBreak(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    if (bytes[i] === CR || bytes[i] === LF) return true;
  }
  return false;
}

/** The line at `pos` starts with field `name` (lower-case ASCII): name, optional WSP, colon. */
function startsWithField(bytes: Uint8Array, pos: number, name: string): boolean {
  if (pos + name.length >= bytes.length) return false;
  for (let i = 0; i < name.length; i++) {
    let b = bytes[pos + i]!;
    if (b >= 0x41 && b <= 0x5a) b += 0x20;
    if (b !== name.charCodeAt(i)) return false;
  }
  let i = pos + name.length;
  // RFC 5322 §4.5.3 (obsolete syntax) allows white space before the colon.
  while (i < bytes.length && (bytes[i] === SP || bytes[i] === TAB)) i++;
  return bytes[i] === COLON;
}
