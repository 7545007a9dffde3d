/**
 * The one mapping from an upstream's reply to what it means for a recipient: the code
 * decides delivered, deferred or failed, and the enhanced status goes into the bounce.
 */
import type { RecipientResult } from "./upstream_types.ts";

/** A recipient's status from an SMTP reply code: 2xx delivered, 5xx failed, else deferred. */
export function statusOf(code: number | undefined): RecipientResult["status"] {
  if (code === undefined) return "deferred";
  if (code >= 200 && code < 300) return "delivered";
  if (code >= 500 && code < 600) return "failed";
  return "deferred";
}

/**
 * A reply that says the upstream is throttling us rather than anything about a recipient:
 * 421 (closing), 454 4.7.0 (Gmail's "too many login attempts"), or a 450/451 about a rate.
 */
export function isThrottle(response: string | undefined): boolean {
  if (!response) return false;
  if (/^421\b/.test(response) || /^454[ -]4\.7\.0\b/.test(response)) return true;
  return /^45[01]\b/.test(response) && /\b(rate|too many|throttl\w*|slow down)\b/i.test(response);
}

/** The reply code at the start of a server reply ("250 ok" → 250), if there is one. */
export function replyCode(text: string | undefined): number | undefined {
  const m = text ? /^([2-5]\d\d)[ -]/.exec(text) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * The enhanced status code of an upstream reply for a DSN, e.g. "5.1.1": a failure reports
 * a permanent class (a 4xx that expired is 5.x.x), a delay warning a transient one.
 */
export function enhancedStatus(response: string | undefined, delayed = false): string {
  const m = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(response ?? "");
  const cls = delayed ? "4" : "5";
  return m && m[1] !== "2" ? `${cls}.${m[2]}.${m[3]}` : `${cls}.0.0`;
}
