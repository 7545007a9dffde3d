/**
 * The ESMTP parameters Carrier adds to the upstream's MAIL FROM and RCPT TO lines beyond
 * what nodemailer writes: SMTPUTF8 (RFC 6531) for UTF-8 headers, and the client's DSN
 * requests (RFC 3461) passed on when the upstream offers DSN. Pure.
 */

import { encodeXtext } from "../smtp/dsn.ts";
import type { OutgoingMessage } from "./upstream_types.ts";

/** Text to append to the MAIL FROM line, and to each recipient's RCPT TO line. */
export interface ExtraParams {
  mail: string;
  rcpt: Map<string, string>;
}

/** The parameters for `msg` on an upstream with these EHLO extensions. */
export function extraParams(
  msg: OutgoingMessage,
  extensions: readonly string[],
  needsUtf8: boolean,
): ExtraParams {
  let mail = needsUtf8 ? " SMTPUTF8" : "";
  const rcpt = new Map<string, string>();
  if (msg.dsn && extensions.includes("DSN")) {
    if (msg.dsn.ret) mail += ` RET=${msg.dsn.ret}`;
    if (msg.dsn.envid !== undefined) mail += ` ENVID=${encodeXtext(msg.dsn.envid)}`;
    msg.recipients.forEach((address, i) => {
      const d = msg.dsn!.recipients[i];
      let text = "";
      if (d?.notify) text += ` NOTIFY=${d.notify.join(",")}`;
      if (d?.orcpt) text += ` ORCPT=${d.orcpt.type};${encodeXtext(d.orcpt.address)}`;
      if (text) rcpt.set(address, text);
    });
  }
  return { mail, rcpt };
}

/** `line` with the extra parameters it needs (a MAIL FROM or RCPT TO line; others as given). */
export function withExtraParams(line: string, extra: ExtraParams): string {
  if (/^MAIL FROM:/i.test(line)) {
    // nodemailer writes SMTPUTF8 itself for non-ASCII addresses: never twice.
    const mail = / SMTPUTF8(\s|$)/i.test(line) ? extra.mail.replace(" SMTPUTF8", "") : extra.mail;
    return line + mail;
  }
  const rcpt = /^RCPT TO:<(.*)>$/i.exec(line);
  return rcpt ? line + (extra.rcpt.get(rcpt[1]) ?? "") : line;
}

/** RCPTMAX of the upstream's EHLO `LIMITS` line (RFC 9422), if it has one. */
export function rcptMaxOf(ehloLines: readonly string[]): number | undefined {
  for (const line of ehloLines) {
    const m = /^LIMITS\b.*\bRCPTMAX=(\d{1,6})\b/i.exec(line);
    if (m && Number(m[1]) > 0) return Number(m[1]);
  }
  return undefined;
}
