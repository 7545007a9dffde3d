/**
 * The stateless part of reading a command: decoding the line's bytes, splitting off
 * the verb, parsing MAIL FROM and RCPT TO and checking their parameters (RFC 1870 SIZE, 6152 BODY,
 * 6531 SMTPUTF8, 4954 AUTH, 3461 RET and ENVID). The session supplies the little state these depend on.
 */

import { AddressError, type EsmtpParam, parseParams, parsePath } from "./address.ts";
import { checkRcptParams, type MessageDsn, type RecipientDsn, takeMailDsnParam } from "./dsn.ts";
import { type Reply, reply } from "./reply.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Decodes a complete command line: UTF-8 without control characters (TAB allowed). */
export function decodeCommand(bytes: Uint8Array): { text: string } | { error: Reply } {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { error: reply(500, "5.5.2", "Invalid UTF-8 in command") };
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) {
    return { error: reply(500, "5.5.2", "Control characters in command") };
  }
  return { text };
}

/** Splits a command line into its upper-cased verb and the arguments after one space. */
export function splitCommand(text: string): { verb: string; args: string } {
  const space = text.indexOf(" ");
  const verb = (space === -1 ? text : text.slice(0, space)).toUpperCase();
  const args = space === -1 ? "" : text.slice(space + 1);
  return { verb, args };
}

/**
 * Parses what follows `MAIL FROM:`: the reverse-path and its parameters. SMTPUTF8
 * among the parameters decides whether the path may be UTF-8. Throws AddressError.
 */
export function parseMailFrom(
  rest: string,
): { address: string; params: EsmtpParam[]; smtputf8: boolean } {
  // Parameters are parsed first: SMTPUTF8 decides whether the path may be UTF-8.
  const pre = parsePath(rest, { allowNull: true, utf8: true });
  const params = parseParams(pre.rest);
  const smtputf8 = params.some((p) => p.keyword === "SMTPUTF8");
  const path = parsePath(rest, { allowNull: true, utf8: smtputf8 });
  return { address: path.address, params, smtputf8 };
}

/** What the session knows when it checks MAIL parameters. */
export interface MailParamContext {
  /** The client said EHLO (parameters need it). */
  esmtp: boolean;
  maxMessageSize: number;
  /** AUTH is offered in this session, so MAIL's AUTH= parameter is accepted. */
  authOffered: boolean;
}

/** The MAIL FROM parameters that shape the transaction. */
export interface MailParams {
  body: "7BIT" | "8BITMIME";
  declaredSize?: number;
  /** RET and ENVID (RFC 3461), when given. */
  dsn: MessageDsn;
}

/** Checks MAIL FROM parameters in order; the first problem is the reply to send. */
export function checkMailParams(
  params: readonly EsmtpParam[],
  ctx: MailParamContext,
): MailParams | { error: Reply } {
  let body: "7BIT" | "8BITMIME" = "7BIT";
  let size: number | undefined;
  const dsn: MessageDsn = {};
  const seen = new Set<string>();
  for (const p of params) {
    if (seen.has(p.keyword)) {
      return { error: reply(501, "5.5.4", `Syntax: duplicate ${p.keyword} parameter`) };
    }
    seen.add(p.keyword);
    if (!ctx.esmtp) {
      return { error: reply(555, "5.5.4", "Parameters need EHLO") };
    }
    switch (p.keyword) {
      case "SIZE":
        if (!p.value || !/^\d{1,20}$/.test(p.value)) {
          return { error: reply(501, "5.5.4", "Syntax: SIZE=<number>") };
        }
        size = Number(p.value);
        if (size > ctx.maxMessageSize) {
          return {
            error: reply(552, "5.3.4", "Message size exceeds fixed maximum message size"),
          };
        }
        break;
      case "BODY": {
        const value = p.value?.toUpperCase();
        if (value !== "7BIT" && value !== "8BITMIME") {
          return { error: reply(555, "5.5.4", "Unsupported BODY parameter value") };
        }
        body = value;
        break;
      }
      case "SMTPUTF8":
        if (p.value !== undefined) {
          return { error: reply(555, "5.5.4", "SMTPUTF8 takes no value") };
        }
        break;
      case "AUTH":
        // RFC 4954 §5: accepted and not trusted; we do not pass identities on.
        if (!ctx.authOffered) {
          return { error: reply(555, "5.5.4", "Unsupported parameter AUTH") };
        }
        break;
      default: {
        const taken = takeMailDsnParam(p, dsn);
        if (typeof taken === "object") return taken;
        if (!taken) return { error: reply(555, "5.5.4", `Unsupported parameter ${p.keyword}`) };
      }
    }
  }
  return { body, declaredSize: size, dsn };
}

/** An address that does not parse, as its reply (553 for a bad sender, 501 otherwise). */
function addressFailure(e: unknown): { error: Reply } {
  if (e instanceof AddressError) {
    return { error: reply(e.code, e.code === 553 ? "5.1.7" : "5.1.3", e.message) };
  }
  throw e;
}

/** Parses the arguments of MAIL (`FROM:<path> params`) and checks the parameters. */
export function parseMailCommand(
  args: string,
  ctx: MailParamContext,
): { address: string; smtputf8: boolean; params: MailParams } | { error: Reply } {
  const match = /^FROM:/i.exec(args);
  if (!match) return { error: reply(501, "5.5.4", "Syntax: MAIL FROM:<address>") };
  let from;
  try {
    from = parseMailFrom(args.slice(match[0].length));
  } catch (e) {
    return addressFailure(e);
  }
  const params = checkMailParams(from.params, ctx);
  if ("error" in params) return params;
  return { address: from.address, smtputf8: from.smtputf8, params };
}

/** Parses the arguments of RCPT (`TO:<path> params`); NOTIFY and ORCPT need EHLO. */
export function parseRcptCommand(
  args: string,
  ctx: { esmtp: boolean; utf8: boolean },
): { address: string; dsn: RecipientDsn } | { error: Reply } {
  const match = /^TO:/i.exec(args);
  if (!match) return { error: reply(501, "5.5.4", "Syntax: RCPT TO:<address>") };
  let path, params;
  try {
    path = parsePath(args.slice(match[0].length), { allowNull: false, utf8: ctx.utf8 });
    params = parseParams(path.rest);
  } catch (e) {
    return addressFailure(e);
  }
  if (params.length > 0 && !ctx.esmtp) {
    return { error: reply(555, "5.5.4", "Parameters need EHLO") };
  }
  const dsn = checkRcptParams(params);
  if ("error" in dsn) return dsn;
  return { address: path.address, dsn };
}
