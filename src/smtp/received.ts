/**
 * The trace header Carrier prepends to every accepted message (RFC 5321 §4.4,
 * "with" keywords from RFC 3848), so a recipient can see the hop through us.
 */

import type { Envelope } from "./envelope.ts";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** An RFC 5322 date-time in UTC, e.g. `Sun, 29 Nov 2026 03:48:34 +0000`; Carrier's one formatter. */
export function rfc5322Date(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ` +
    `${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:` +
    `${pad(date.getUTCSeconds())} +0000`;
}

/** Keeps client-supplied text from breaking the header: printable ASCII, no parentheses. */
function clean(text: string): string {
  return text.replace(/[^\x21-\x27\x2a-\x7e]/g, "?").slice(0, 255);
}

/** Builds the `Received:` header (folded, CRLF-terminated) for a message. */
export function receivedHeader(
  envelope: Envelope,
  opts: { hostname: string; id: string; date: Date },
): string {
  const address = envelope.client.address.includes(":")
    ? `IPv6:${envelope.client.address}`
    : envelope.client.address;
  let header = `Received: from ${clean(envelope.helo)} ([${address}])\r\n` +
    `\tby ${opts.hostname} (Carrier) with ${envelope.protocol} id ${opts.id}`;
  if (envelope.recipients.length === 1) {
    header += `\r\n\tfor <${envelope.recipients[0]}>`;
  }
  return `${header}; ${rfc5322Date(opts.date)}\r\n`;
}
