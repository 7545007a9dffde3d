/**
 * Reading nodemailer's errors and turning them into per-recipient results or session failures,
 * as pure functions, so the upstream session only keeps the connection handling.
 */
import { Buffer } from "node:buffer";
import { oneLine } from "../text.ts";
import { statusOf } from "./reply_outcome.ts";
import type { RecipientResult } from "./upstream_types.ts";

/** The fields of nodemailer's errors we read; all optional, narrowed from `unknown`. */
export interface NmError {
  message: string;
  code?: string;
  command?: string;
  response?: string;
  responseCode?: number;
  recipient?: string;
  rejectedErrors?: NmError[];
}

/** Narrows anything nodemailer threw (or passed to a callback) to {@link NmError}. */
export function asNmError(e: unknown): NmError {
  if (e && typeof e === "object") {
    const o = e as Record<string, unknown>;
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    const rejected = Array.isArray(o.rejectedErrors) ? o.rejectedErrors.map(asNmError) : undefined;
    return {
      message: str(o.message) ?? String(e),
      code: str(o.code),
      command: str(o.command),
      response: str(o.response),
      responseCode: typeof o.responseCode === "number" ? o.responseCode : undefined,
      recipient: str(o.recipient),
      rejectedErrors: rejected,
    };
  }
  return { message: String(e) };
}

/** The strings of `v` when it is an array (other entries dropped); otherwise none. */
export function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/**
 * `text` with every secret, and every secret's base64 form (unpadded, as AUTH would send it),
 * replaced by "[redacted]".
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join("[redacted]");
  for (const s of secrets) {
    const b64 = Buffer.from(s, "utf8").toString("base64").replace(/=+$/, "");
    if (b64.length >= 4) out = out.split(b64).join("[redacted]");
  }
  return out;
}

/** Message and reply code of a temporary `UpstreamError`, for the session to throw. */
export interface SessionFailure {
  message: string;
  code?: number;
}

/**
 * What a failed connect/greeting/STARTTLS means: no STARTTLS offered, a TLS failure, or a
 * connection failure (all temporary). `scrub` removes secrets from the message.
 */
export function connectFailure(
  e: unknown,
  where: string,
  scrub: (text: string) => string,
): SessionFailure {
  const err = asNmError(e);
  if (err.command === "STARTTLS" && err.responseCode !== undefined) {
    return {
      message:
        `upstream ${where} does not offer STARTTLS; refusing to send credentials/mail in clear ` +
        `(server said: ${oneLine(err.response ?? "")})`,
      code: err.responseCode,
    };
  }
  if (err.code === "ETLS" || /certificate|tls|ssl|handshake/i.test(err.message)) {
    return { message: scrub(`TLS with upstream ${where} failed: ${oneLine(err.message)}`) };
  }
  return {
    message: scrub(`cannot connect to upstream ${where}: ${oneLine(err.message)}`),
    code: err.responseCode,
  };
}

/** The result for one recipient the server refused (`e` is nodemailer's error for it). */
export function recipientFromError(recipient: string, e: NmError): RecipientResult {
  const code = e.responseCode;
  const response = oneLine(e.response ?? e.message);
  return { recipient, status: statusOf(code), code, response, rcptReply: true };
}

/**
 * A failed send: either a result for every recipient (in order), or `broken` when the session
 * failed and nothing is known to be delivered (the session then drops the connection).
 */
export type SendFailure =
  | { kind: "results"; results: RecipientResult[] }
  | { kind: "broken"; failure: SessionFailure };

/**
 * Classifies a failed `conn.send` for `recipients`. `envelope` is SMTPConnection's `_envelope`
 * (accepted and rejected recipients, read defensively); `scrub` removes secrets from messages.
 */
export function classifySendFailure(
  recipients: readonly string[],
  err: NmError,
  envelope: unknown,
  scrub: (text: string) => string,
): SendFailure {
  const all = (status: RecipientResult["status"], code: number | undefined, response: string) =>
    recipients.map((recipient) => ({ recipient, status, code, response }));
  const results = (list: RecipientResult[]): SendFailure => ({ kind: "results", results: list });

  if (err.code === "EENVELOPE" && err.command === "API") {
    // nodemailer refused an address before sending anything (CR/LF or <> in it).
    return results(all("failed", undefined, `5.1.3 ${oneLine(err.message)}`));
  }
  if (err.code === "EMESSAGE" && err.command === "MAIL FROM" && err.responseCode === undefined) {
    // SIZE check against the server's advertised limit, before MAIL FROM.
    return results(all("failed", 552, `552 5.3.4 ${oneLine(err.message)}`));
  }
  const smtpReply = err.responseCode !== undefined &&
    (err.code === "EENVELOPE" || err.code === "EMESSAGE");
  if (!smtpReply) {
    // The connection failed (or the server closed it): nothing is known to be delivered.
    return {
      kind: "broken",
      failure: {
        message: scrub(
          `upstream connection failed during the transaction: ${
            oneLine(err.response ?? err.message)
          }`,
        ),
        code: err.responseCode,
      },
    };
  }
  const code = err.responseCode;
  const response = oneLine(err.response ?? err.message);
  if (err.command === "MAIL FROM") {
    // 530 (authentication required) and X.4.5 (mail system congestion: Gmail's daily
    // sending limit) are about the session or account, not this message: retry later
    // rather than bounce the whole queue.
    const sessionLevel = code === 530 || /\b[45]\.4\.5\b/.test(response);
    if (!sessionLevel) {
      // A 4xx to MAIL FROM is the upstream's answer to the whole transaction: the next
      // upstream in a failover list may take it (a 5xx is the answer about the message).
      const list = all(statusOf(code), code, response);
      return results(
        statusOf(code) === "deferred" ? list.map((r) => ({ ...r, refusedMail: true })) : list,
      );
    }
    return results(all("deferred", code, response).map((r) => ({ ...r, sessionLevel: true })));
  }
  if (err.command === "RCPT TO") {
    // Every recipient was rejected; each has its own reply.
    const byRcpt = new Map<string, NmError>();
    for (const r of err.rejectedErrors ?? []) {
      if (r.recipient !== undefined) byRcpt.set(r.recipient, r);
    }
    return results(recipients.map((recipient) => {
      const r = byRcpt.get(recipient.trim());
      return r
        ? recipientFromError(recipient, r)
        : { recipient, status: statusOf(code), code, response, rcptReply: true };
    }));
  }
  // DATA (the command or the final reply) failed: it applies to the accepted recipients.
  const envObj = envelope && typeof envelope === "object"
    ? envelope as Record<string, unknown>
    : {};
  const accepted = new Set(stringArray(envObj.accepted));
  const rejected = new Map<string, NmError>();
  if (Array.isArray(envObj.rejectedErrors)) {
    for (const r of envObj.rejectedErrors.map(asNmError)) {
      if (r.recipient !== undefined) rejected.set(r.recipient, r);
    }
  }
  return results(recipients.map((recipient) => {
    const key = recipient.trim();
    const r = rejected.get(key);
    if (r && !accepted.has(key)) return recipientFromError(recipient, r);
    return { recipient, status: statusOf(code), code, response };
  }));
}
