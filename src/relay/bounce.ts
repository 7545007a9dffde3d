/**
 * Delivery status notifications (RFC 3464): the message sent back to the original sender when
 * recipients fail permanently, are still being retried ("delayed"), or were handed to an
 * upstream that cannot report further ("relayed", for NOTIFY=SUCCESS).
 *
 * Everything that came from outside (addresses, server replies, host names) is sanitised so it
 * cannot inject header lines or break the MIME structure; the original header block is
 * attached byte-for-byte.
 */

import { concatBytes } from "../bytes.ts";
import { rfc5322Date } from "../smtp/received.ts";
import { hasNonAscii, oneLineNoControls } from "../text.ts";

/** What a bounce reports: who sent what, when, and why each recipient failed. */
export interface BounceInput {
  /** Our host name, for Reporting-MTA and the MAILER-DAEMON address. */
  reportingMta: string;
  originalSender: string;
  arrivalDate: Date;
  /** Our queue id of the original message. */
  messageId: string;
  failures: {
    recipient: string;
    /** Enhanced status code, e.g. "5.1.1". */
    status: string;
    /** Server reply or our explanation, e.g. "550 5.1.1 user unknown". */
    diagnostic: string;
    remoteMta?: string;
    action?: DsnAction;
    /** ORCPT of the recipient (RFC 3461 §4.2), reported as Original-Recipient. */
    orcpt?: { type: string; address: string };
  }[];
  /** Header block of the original message, exact bytes (see {@link headerBlock}). */
  originalHeaders: Uint8Array;
  /** The whole original message (RET=FULL), attached instead of its headers. */
  fullMessage?: Uint8Array;
  /** ENVID of the original message (RFC 3461 §4.4), reported as Original-Envelope-Id. */
  envid?: string;
  /** For a delay warning: when Carrier gives up (Will-Retry-Until, RFC 3464 §2.3.9). */
  willRetryUntil?: Date;
  now?: Date;
}

/** RFC 3464 §2.3.3 actions Carrier reports. */
export type DsnAction = "failed" | "delayed" | "relayed";

/** Longest header block we attach or search for; bigger header blocks are cut at a line end. */
export const MAX_HEADER_BLOCK = 64 * 1024;

/** Longest diagnostic text we keep (keeps every line far below the 998-octet limit). */
const MAX_DIAGNOSTIC = 900;

const enc = new TextEncoder();
/** ASCII-only version for the machine-readable part: non-ASCII becomes "?". */
function asciiLine(s: string): string {
  return oneLineNoControls(s).replace(/[^\x20-\x7e]/g, "?");
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}

/** A host name or address literal, or "" when nothing sensible is left. */
function hostToken(s: string): string {
  return s.replace(/[^A-Za-z0-9.:\[\]_-]/g, "").slice(0, 255);
}

/** An address for a header or DSN field: one line, no angle brackets. */
function addressToken(s: string): string {
  return truncate(oneLineNoControls(s).replace(/[<>]/g, ""), 320);
}

/** Folds a header field at spaces so lines stay short (they are ≤ 998 octets regardless). */
function fold(field: string, width = 78): string {
  if (field.length <= width) return field;
  const words = field.split(" ");
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    if (line !== "" && line.length + 1 + w.length > width) {
      lines.push(line);
      line = ` ${w}`;
    } else {
      line = line === "" ? w : `${line} ${w}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines.join("\r\n");
}

function validStatus(status: string, action: DsnAction): string {
  const s = status.trim();
  if (/^[245]\.\d{1,3}\.\d{1,3}$/.test(s)) return s;
  return action === "delayed" ? "4.0.0" : action === "relayed" ? "2.0.0" : "5.0.0";
}

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

const CRLFCRLF = new Uint8Array([13, 10, 13, 10]);

/**
 * The header block of a message (or of its first chunk): the bytes before the first empty
 * line, including the last header line's CRLF. Without an empty line the whole input counts
 * as headers. Capped at {@link MAX_HEADER_BLOCK}, cut after a CRLF where possible.
 */
export function headerBlock(message: Uint8Array): Uint8Array {
  if (message.length >= 2 && message[0] === 13 && message[1] === 10) return new Uint8Array(0);
  const limit = Math.min(message.length, MAX_HEADER_BLOCK + 2);
  const end = indexOf(message.subarray(0, limit), CRLFCRLF);
  if (end >= 0 && end + 2 <= MAX_HEADER_BLOCK) return message.slice(0, end + 2);
  if (message.length <= MAX_HEADER_BLOCK) return message.slice();
  // Too long: cut after the last CRLF within the cap (or hard at the cap).
  const capped = message.subarray(0, MAX_HEADER_BLOCK);
  for (let i = capped.length - 1; i > 0; i--) {
    if (capped[i] === 10 && capped[i - 1] === 13) return message.slice(0, i + 1);
  }
  return message.slice(0, MAX_HEADER_BLOCK);
}

/**
 * Builds a complete RFC 3464 bounce (multipart/report) with CRLF line endings, addressed to
 * the original sender. Throws for the null sender: a bounce is never sent to `<>`.
 */
export function buildBounce(input: BounceInput): Uint8Array {
  const sender = addressToken(input.originalSender);
  if (sender === "") throw new Error("no bounce is sent for the null sender <>");
  if (input.failures.length === 0) throw new Error("a bounce needs at least one recipient");
  const mta = hostToken(input.reportingMta) || "localhost";
  const now = input.now ?? new Date();
  const queueId = asciiLine(input.messageId).replace(/[^A-Za-z0-9._-]/g, "") || "unknown";

  const failures = input.failures.map((f) => {
    const action = f.action ?? "failed";
    return {
      recipient: addressToken(f.recipient),
      action,
      status: validStatus(f.status, action),
      diagnostic: truncate(oneLineNoControls(f.diagnostic), MAX_DIAGNOSTIC),
      remoteMta: f.remoteMta ? hostToken(f.remoteMta) : "",
      orcpt: f.orcpt
        ? `${asciiLine(f.orcpt.type).replace(/[^A-Za-z0-9-]/g, "")};${
          addressToken(f.orcpt.address)
        }`
        : "",
    };
  });
  const failed = failures.filter((f) => f.action === "failed");
  const delayed = failures.filter((f) => f.action === "delayed");
  const relayed = failures.filter((f) => f.action === "relayed");
  const full = input.fullMessage !== undefined && failed.length > 0;
  const attached = full ? input.fullMessage! : input.originalHeaders;

  const headers = attached.length === 0 ||
      (attached.length >= 2 && attached[attached.length - 2] === 13 &&
        attached[attached.length - 1] === 10)
    ? attached
    : concatBytes([attached, enc.encode("\r\n")]);

  let boundary = `=_carrier_${randomHex(12)}`;
  while (indexOf(headers, enc.encode(boundary)) >= 0) boundary = `=_carrier_${randomHex(12)}`;

  const utf8Addresses = hasNonAscii(sender) ||
    failures.some((f) => hasNonAscii(f.recipient) || hasNonAscii(f.orcpt));
  const eightBitHeaders = headers.some((b) => b >= 0x80);

  // Part 1: for humans.
  const text: string[] = [
    `This is the mail system at host ${mta}.`,
    "",
  ];
  if (failed.length > 0) {
    text.push(
      "I'm sorry to have to inform you that your message could not",
      "be delivered to one or more recipients. The reasons are given below.",
      "",
    );
    for (const f of failed) text.push(`<${f.recipient}>: ${f.diagnostic}`, "");
  }
  if (delayed.length > 0) {
    text.push(
      "Delivery to the following recipients has been delayed. The mail system",
      "will keep trying; you do not need to resend the message.",
      "",
    );
    for (const f of delayed) text.push(`<${f.recipient}>: ${f.diagnostic}`, "");
    if (input.willRetryUntil) {
      text.push(`It will give up on ${rfc5322Date(input.willRetryUntil)}.`, "");
    }
  }
  if (relayed.length > 0) {
    text.push(
      "Your message was relayed to the following recipients. The server it was",
      "handed to does not send delivery notifications, so you may hear no more.",
      "",
    );
    for (const f of relayed) text.push(`<${f.recipient}>: ${f.diagnostic}`, "");
  }
  text.push(
    `The message was received on ${rfc5322Date(input.arrivalDate)} (queue id ${queueId}).`,
    full ? "It is attached below." : "Its headers are attached below.",
  );
  const textBody = text.map((l) => fold(l, 78)).join("\r\n") + "\r\n";
  const textIs8bit = hasNonAscii(textBody);

  // Part 2: for machines.
  const addrType = (a: string) => (hasNonAscii(a) ? "utf-8" : "rfc822");
  const dsnAddress = (a: string) => (utf8Addresses ? a : asciiLine(a));
  const envid = input.envid === undefined ? "" : truncate(asciiLine(input.envid), 100);
  const status: string[] = [
    ...(envid ? [`Original-Envelope-Id: ${envid}`] : []),
    `Reporting-MTA: dns; ${mta}`,
    `X-Carrier-Queue-ID: ${queueId}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
    "",
  ];
  for (const f of failures) {
    if (f.orcpt) status.push(`Original-Recipient: ${utf8Addresses ? f.orcpt : asciiLine(f.orcpt)}`);
    status.push(`Final-Recipient: ${addrType(f.recipient)}; ${dsnAddress(f.recipient)}`);
    status.push(`Action: ${f.action}`);
    status.push(`Status: ${f.status}`);
    if (f.remoteMta) status.push(`Remote-MTA: dns; ${f.remoteMta}`);
    if (f.diagnostic) status.push(fold(`Diagnostic-Code: smtp; ${asciiLine(f.diagnostic)}`));
    if (f.action === "delayed" && input.willRetryUntil) {
      status.push(`Will-Retry-Until: ${rfc5322Date(input.willRetryUntil)}`);
    }
    status.push("");
  }
  const statusType = utf8Addresses ? "message/global-delivery-status" : "message/delivery-status";

  const subject = failed.length > 0
    ? "Undelivered Mail Returned to Sender"
    : delayed.length > 0
    ? "Delayed Mail (still being retried)"
    : "Successful Mail Relay Report";
  const top = [
    `From: Mail Delivery System <MAILER-DAEMON@${mta}>`,
    `To: <${sender}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${queueId}.${now.getTime()}.${randomHex(4)}@${mta}>`,
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="${boundary}"`,
    "",
    "This is a MIME-encapsulated message.",
    "",
    `--${boundary}`,
    "Content-Description: Notification",
    "Content-Type: text/plain; charset=utf-8",
    `Content-Transfer-Encoding: ${textIs8bit ? "8bit" : "7bit"}`,
    "",
    textBody,
    `--${boundary}`,
    "Content-Description: Delivery report",
    `Content-Type: ${statusType}`,
    ...(utf8Addresses ? ["Content-Transfer-Encoding: 8bit"] : []),
    "",
    status.join("\r\n"),
    `--${boundary}`,
    ...(full
      ? [
        "Content-Description: Undelivered Message",
        `Content-Type: ${eightBitHeaders ? "message/global" : "message/rfc822"}`,
      ]
      : [
        `Content-Description: ${failed.length > 0 ? "Undelivered " : ""}Message Headers`,
        "Content-Type: text/rfc822-headers",
      ]),
    `Content-Transfer-Encoding: ${eightBitHeaders ? "8bit" : "7bit"}`,
    "",
    "",
  ].join("\r\n");
  const bottom = `\r\n--${boundary}--\r\n`;
  return concatBytes([enc.encode(top), headers, enc.encode(bottom)]);
}
