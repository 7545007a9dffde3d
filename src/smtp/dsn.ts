/**
 * The DSN extension's parameters (RFC 3461): RET and ENVID on MAIL FROM, NOTIFY and
 * ORCPT on RCPT TO, with xtext decoding (§4) and the syntax checks of §4.1–4.4.
 * Pure parsing; what a DSN request makes Carrier do lives in the relay.
 */

import type { EsmtpParam } from "./address.ts";
import { type Reply, reply } from "./reply.ts";

/** What a recipient asked to be told about (RFC 3461 §4.1); NEVER stands alone. */
export type NotifyKind = "NEVER" | "SUCCESS" | "FAILURE" | "DELAY";

/** The original recipient (RFC 3461 §4.2): an address type and the decoded address. */
export interface OriginalRecipient {
  /** e.g. "rfc822" or "utf-8" (RFC 6533). */
  type: string;
  address: string;
}

/** The DSN parameters of one RCPT TO. */
export interface RecipientDsn {
  notify?: NotifyKind[];
  orcpt?: OriginalRecipient;
}

/** The DSN parameters of MAIL FROM. */
export interface MessageDsn {
  ret?: "FULL" | "HDRS";
  envid?: string;
}

/** RFC 3461 §4.4: an ENVID is at most 100 characters. */
const MAX_ENVID = 100;
/** RFC 3461 §4.2: an ORCPT value is at most 500 characters. */
const MAX_ORCPT = 500;

const syntax = (what: string): { error: Reply } => ({ error: reply(501, "5.5.4", what) });

/**
 * Decodes xtext (RFC 3461 §4): printable ASCII except "+" and "=", with "+XX" (upper-case
 * hex) for any other octet. Returns undefined for anything else.
 */
export function decodeXtext(text: string): string | undefined {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (c >= 0x21 && c <= 0x7e && c !== 0x3d) {
      out += text[i];
    } else {
      return undefined;
    }
  }
  return out;
}

/** Encodes text as xtext: "+", "=", controls, space and non-ASCII octets become "+XX". */
export function encodeXtext(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d
      ? String.fromCharCode(byte)
      : `+${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Parses NOTIFY's value: NEVER, or a list of SUCCESS, FAILURE and DELAY without repeats. */
export function parseNotify(value: string | undefined): NotifyKind[] | { error: Reply } {
  if (!value) return syntax("Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY");
  const kinds = value.toUpperCase().split(",");
  const seen = new Set<string>();
  for (const k of kinds) {
    if (!["NEVER", "SUCCESS", "FAILURE", "DELAY"].includes(k) || seen.has(k)) {
      return syntax("Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY");
    }
    seen.add(k);
  }
  if (seen.has("NEVER") && kinds.length > 1) {
    return syntax("Syntax: NOTIFY=NEVER cannot be combined with other values");
  }
  return kinds as NotifyKind[];
}

/** Parses ORCPT's value: `addr-type ";" xtext`. */
export function parseOrcpt(value: string | undefined): OriginalRecipient | { error: Reply } {
  const bad = syntax("Syntax: ORCPT=addr-type;address (xtext)");
  if (!value || value.length > MAX_ORCPT) return bad;
  const semi = value.indexOf(";");
  if (semi <= 0) return bad;
  const type = value.slice(0, semi);
  if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(type)) return bad;
  let address = decodeXtext(value.slice(semi + 1));
  if (address === undefined || address === "") return bad;
  if (type.toLowerCase() === "utf-8") {
    // RFC 6533 §3: non-ASCII characters travel as \x{HEX}.
    address = address.replace(
      /\\x\{([0-9A-Fa-f]{2,6})\}/g,
      (_, hex: string) => String.fromCodePoint(Math.min(parseInt(hex, 16), 0x10ffff)),
    );
  }
  return { type: type.toLowerCase(), address };
}

/**
 * Reads RET= or ENVID= of MAIL FROM into `dsn`; false for any other keyword (the caller
 * handles it). A bad or repeated value is the reply to send.
 */
export function takeMailDsnParam(
  p: EsmtpParam,
  dsn: MessageDsn,
): boolean | { error: Reply } {
  if (p.keyword === "RET") {
    const value = p.value?.toUpperCase();
    if (value !== "FULL" && value !== "HDRS") return syntax("Syntax: RET=FULL or RET=HDRS");
    dsn.ret = value;
    return true;
  }
  if (p.keyword === "ENVID") {
    const envid = p.value === undefined ? undefined : decodeXtext(p.value);
    if (envid === undefined || envid === "" || envid.length > MAX_ENVID) {
      return syntax("Syntax: ENVID=xtext of at most 100 characters");
    }
    dsn.envid = envid;
    return true;
  }
  return false;
}

/** Checks RCPT TO's parameters: only NOTIFY and ORCPT, each at most once. */
export function checkRcptParams(params: readonly EsmtpParam[]): RecipientDsn | { error: Reply } {
  const dsn: RecipientDsn = {};
  const seen = new Set<string>();
  for (const p of params) {
    if (seen.has(p.keyword)) return syntax(`Syntax: duplicate ${p.keyword} parameter`);
    seen.add(p.keyword);
    if (p.keyword === "NOTIFY") {
      const notify = parseNotify(p.value);
      if ("error" in notify) return notify;
      dsn.notify = notify;
    } else if (p.keyword === "ORCPT") {
      const orcpt = parseOrcpt(p.value);
      if ("error" in orcpt) return orcpt;
      dsn.orcpt = orcpt;
    } else {
      return { error: reply(555, "5.5.4", `Unsupported parameter ${p.keyword}`) };
    }
  }
  return dsn;
}
