/**
 * What a message needs of the upstream's EHLO extensions before it may be sent unchanged.
 * Carrier never converts a message (that would break signatures): when the upstream lacks what
 * the message needs, every recipient fails with a clear reason and the sender gets a bounce.
 */

import { hasNonAscii } from "../text.ts";
import type { OutgoingMessage } from "./upstream_types.ts";

/** The message needs SMTPUTF8 (RFC 6531): the client used it, or an address is non-ASCII. */
export function needsSmtpUtf8(msg: OutgoingMessage): boolean {
  return msg.smtputf8 || hasNonAscii(msg.sender) || msg.recipients.some(hasNonAscii);
}

/**
 * Why the message cannot go to an upstream offering `extensions` (enhanced status text, RFC
 * 3463), or undefined when it can: SMTPUTF8 (5.6.7, RFC 6531 §3.2) and 8BITMIME for an 8-bit
 * body (5.6.3 conversion required but not supported, RFC 6152 §3 and RFC 3463).
 */
export function unmetNeed(
  msg: OutgoingMessage,
  extensions: readonly string[],
  needsUtf8: boolean,
): string | undefined {
  if (needsUtf8 && !extensions.includes("SMTPUTF8")) {
    return "5.6.7 upstream server does not support SMTPUTF8, which this message requires";
  }
  if (msg.eightBit && !extensions.includes("8BITMIME")) {
    return "5.6.3 upstream server does not support 8BITMIME, which this message's 8-bit body requires";
  }
  return undefined;
}
