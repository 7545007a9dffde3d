/**
 * What the server offers: the EHLO extension list (RFC 5321 §4.1.1.1) and the HELP
 * text. One place, so a new extension is advertised where its rules are listed.
 */

/** The listener settings the EHLO reply depends on. */
export interface Offer {
  hostname: string;
  maxMessageSize: number;
}

/** The lines of the 250 reply to EHLO, in order; STARTTLS and AUTH only when offered now. */
export function ehloLines(offer: Offer, now: { starttls: boolean; auth: boolean }): string[] {
  const lines = [
    offer.hostname,
    "PIPELINING",
    `SIZE ${offer.maxMessageSize}`,
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "CHUNKING",
  ];
  if (now.starttls) lines.push("STARTTLS");
  if (now.auth) lines.push("AUTH PLAIN LOGIN");
  return lines;
}

/** The 214 reply to HELP. */
export const HELP_TEXT = [
  "Carrier SMTP relay. Commands:",
  "EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
];
