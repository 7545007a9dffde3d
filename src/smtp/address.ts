/**
 * Envelope address parsing per RFC 5321 §4.1.2 (and RFC 6531 for SMTPUTF8):
 * the `<path>` of MAIL FROM and RCPT TO, then the ESMTP parameters after it.
 * Pure functions; every rejection carries the reason a client is told.
 */

import { isIPv4, isIPv6 } from "../ip.ts";

/** A parsed path: the mailbox without angle brackets ("" for the null reverse-path). */
export interface ParsedPath {
  address: string;
  /** The text after the closing ">" (ESMTP parameters), trimmed. */
  rest: string;
  /** True when the mailbox contains non-ASCII characters (needs SMTPUTF8). */
  utf8: boolean;
}

/** Why a path was refused; `code` 501 syntax, 553 mailbox name not allowed. */
export class AddressError extends Error {
  constructor(message: string, readonly code: 501 | 553 = 501) {
    super(message);
  }
}

const MAX_LOCAL_PART = 64;
const MAX_DOMAIN = 255;
const MAX_PATH = 256;

// atext per RFC 5322 §3.2.3, plus (with SMTPUTF8) any non-ASCII character.
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]$/;

function isAtext(ch: string, utf8: boolean): boolean {
  return ATEXT.test(ch) || (utf8 && ch.codePointAt(0)! > 0x7f);
}

/**
 * Parses `<path> params` as it follows `FROM:` or `TO:`. `allowNull` admits `<>`;
 * `utf8` admits non-ASCII mailboxes (only when the transaction uses SMTPUTF8).
 */
export function parsePath(input: string, opts: { allowNull: boolean; utf8: boolean }): ParsedPath {
  const text = input.replace(/^ +/, "");
  if (!text.startsWith("<")) throw new AddressError("Syntax: address must be in angle brackets");
  const close = findClosingBracket(text);
  if (close === -1) throw new AddressError("Syntax: missing closing angle bracket");
  const inner = text.slice(1, close);
  const rest = text.slice(close + 1);
  if (rest.length > 0 && !rest.startsWith(" ")) {
    throw new AddressError("Syntax: expected a space before parameters");
  }
  if (inner === "") {
    if (!opts.allowNull) throw new AddressError("Syntax: null address not allowed here");
    return { address: "", rest: rest.trim(), utf8: false };
  }
  if (new TextEncoder().encode(inner).length > MAX_PATH) {
    throw new AddressError("Path too long", 501);
  }
  let mailbox = inner;
  // A source route (RFC 5321 §4.1.2 A-d-l) is accepted and ignored (§C).
  if (mailbox.startsWith("@")) {
    const colon = mailbox.indexOf(":");
    if (colon === -1) throw new AddressError("Syntax: bad source route");
    for (const hop of mailbox.slice(0, colon).split(",")) {
      if (!hop.startsWith("@") || !isDomain(hop.slice(1), opts.utf8)) {
        throw new AddressError("Syntax: bad source route");
      }
    }
    mailbox = mailbox.slice(colon + 1);
  }
  const utf8 = /[\u0080-\u{10ffff}]/u.test(mailbox);
  if (utf8 && !opts.utf8) {
    throw new AddressError("Non-ASCII address requires SMTPUTF8", 553);
  }
  return { address: parseMailbox(mailbox, opts.utf8), rest: rest.trim(), utf8 };
}

/** Finds the ">" that closes the path, skipping any inside a quoted local part. */
function findClosingBracket(text: string): number {
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ">") {
      return i;
    }
  }
  return -1;
}

/** Validates `local@domain` and returns it unchanged (quoted local parts kept as written). */
export function parseMailbox(mailbox: string, utf8: boolean): string {
  const at = localPartEnd(mailbox, utf8);
  const local = mailbox.slice(0, at);
  const domain = mailbox.slice(at + 1);
  if (new TextEncoder().encode(local).length > MAX_LOCAL_PART) {
    throw new AddressError("Local part too long", 553);
  }
  if (domain.startsWith("[")) {
    if (!isAddressLiteral(domain)) throw new AddressError("Syntax: bad address literal");
  } else if (!isDomain(domain, utf8)) {
    throw new AddressError("Syntax: bad domain");
  }
  return mailbox;
}

/** Returns the index of the "@" after a valid local part (dot-string or quoted string). */
function localPartEnd(mailbox: string, utf8: boolean): number {
  if (mailbox.startsWith('"')) {
    let i = 1;
    for (; i < mailbox.length; i++) {
      const ch = mailbox[i];
      const cp = ch.codePointAt(0)!;
      if (ch === "\\") {
        const next = mailbox.codePointAt(i + 1);
        if (next === undefined || next < 32 || next > 126) {
          throw new AddressError("Syntax: bad quoted pair");
        }
        i++;
      } else if (ch === '"') {
        break;
      } else if (!((cp >= 32 && cp <= 126) || (utf8 && cp > 0x7f))) {
        throw new AddressError("Syntax: bad character in quoted local part");
      }
    }
    if (i >= mailbox.length || mailbox[i + 1] !== "@") {
      throw new AddressError("Syntax: expected @ after quoted local part");
    }
    return i + 1;
  }
  const at = mailbox.lastIndexOf("@");
  if (at <= 0) throw new AddressError("Syntax: address needs local-part@domain");
  const local = mailbox.slice(0, at);
  for (const atom of local.split(".")) {
    if (atom.length === 0) throw new AddressError("Syntax: empty atom in local part");
    for (const ch of atom) {
      if (!isAtext(ch, utf8)) throw new AddressError("Syntax: bad character in local part");
    }
  }
  return at;
}

/** A domain per RFC 5321 (letters, digits, hyphens; U-labels with SMTPUTF8). */
export function isDomain(domain: string, utf8: boolean): boolean {
  if (domain.length === 0 || new TextEncoder().encode(domain).length > MAX_DOMAIN) return false;
  const labels = domain.split(".");
  return labels.every((label) => {
    if (label.length === 0 || label.length > 63) return false;
    if (label.startsWith("-") || label.endsWith("-")) return false;
    for (const ch of label) {
      if (/[A-Za-z0-9-]/.test(ch)) continue;
      if (utf8 && ch.codePointAt(0)! > 0x7f) continue;
      return false;
    }
    return true;
  });
}

/** `[192.0.2.1]`, `[IPv6:2001:db8::1]` or a general literal `[tag:content]`. */
function isAddressLiteral(literal: string): boolean {
  if (!literal.endsWith("]")) return false;
  const body = literal.slice(1, -1);
  if (/^[\d.]+$/.test(body)) return isIPv4(body);
  const colon = body.indexOf(":");
  if (colon <= 0) return false;
  const tag = body.slice(0, colon);
  const content = body.slice(colon + 1);
  if (tag.toLowerCase() === "ipv6") return isIPv6(content);
  return /^[A-Za-z0-9-]*[A-Za-z0-9]$/.test(tag) && /^[\x21-\x5a\x5e-\x7e]+$/.test(content);
}

/** One ESMTP parameter of MAIL or RCPT (`KEYWORD` or `KEYWORD=value`). */
export interface EsmtpParam {
  keyword: string;
  value?: string;
}

/** Splits the parameters after a path (RFC 5321 §4.1.2 esmtp-param); throws on bad syntax. */
export function parseParams(rest: string): EsmtpParam[] {
  if (rest === "") return [];
  return rest.split(/ +/).map((token) => {
    const eq = token.indexOf("=");
    const keyword = eq === -1 ? token : token.slice(0, eq);
    const value = eq === -1 ? undefined : token.slice(eq + 1);
    if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(keyword)) {
      throw new AddressError(`Syntax: bad parameter "${keyword.slice(0, 32)}"`);
    }
    if (value !== undefined && !/^[\x21-\x3c\x3e-\x7e]+$/.test(value)) {
      throw new AddressError(`Syntax: bad value for ${keyword.toUpperCase()}`);
    }
    return { keyword: keyword.toUpperCase(), value };
  });
}
