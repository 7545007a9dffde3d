/** Shared helpers for the tests of the pure protocol layer in src/smtp. */

import { ok, strictEqual } from "node:assert/strict";
import type { Line } from "../../src/smtp/line_stream.ts";
import { type Reply, reply } from "../../src/smtp/reply.ts";
import type { ClientInfo, Envelope, Step } from "../../src/smtp/envelope.ts";
import { OPEN_POLICY, type PolicyContext, type SessionPolicy } from "../../src/smtp/policy.ts";
import { Session, type SessionOptions } from "../../src/smtp/session.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const enc = (text: string): Uint8Array => encoder.encode(text);
export const dec = (bytes: Uint8Array): string => decoder.decode(bytes);

/** Bytes as a binary string (one char per byte), for exact comparisons of non-UTF-8 data. */
export const latin1 = (bytes: Uint8Array): string => String.fromCharCode(...bytes);

export { concatBytes as concat } from "../../src/bytes.ts";

/** A whole command line, as the splitter hands it over. */
export function line(text: string): Line {
  return { bytes: enc(text), complete: true, start: true };
}

export function options(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return {
    hostname: "mx.test",
    maxMessageSize: 1_000_000,
    maxRecipients: 100,
    maxErrors: 1000,
    starttls: false,
    auth: false,
    authOnPlaintext: false,
    policy: OPEN_POLICY,
    ...overrides,
  };
}

export const CLIENT: ClientInfo = { address: "192.0.2.7", port: 40000, tls: false };

export function session(
  overrides: Partial<SessionOptions> = {},
  client: Partial<ClientInfo> = {},
): Session {
  return new Session(options(overrides), { ...CLIENT, ...client });
}

/** Sends one command line. */
export function send(s: Session, text: string): Step {
  return s.receive(line(text));
}

/** The reply codes of a step. */
export function codes(step: Step): number[] {
  return step.replies.map((r) => r.code);
}

/** Checks an enhanced status code: class.subject.detail, class equal to the reply's first digit. */
export function validEnhanced(code: number, enhanced: string | undefined): boolean {
  if (enhanced === undefined) return false;
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})$/.exec(enhanced);
  return m !== null && Number(m[1]) === Math.floor(code / 100);
}

/** Base64 of the UTF-8 bytes of `text`, as an AUTH response. */
export const b64 = (text: string) => btoa(String.fromCharCode(...enc(text)));

/** Asserts one reply with this code and enhanced code (and text matching, if given). */
export function expectReply(
  step: Step,
  code: number,
  enhanced: string | undefined,
  text?: RegExp,
): Reply {
  strictEqual(step.replies.length, 1, `one reply expected: ${JSON.stringify(step.replies)}`);
  const r = step.replies[0];
  strictEqual(r.code, code, JSON.stringify(r));
  strictEqual(r.enhanced, enhanced, JSON.stringify(r));
  if (text) ok(text.test(r.lines.join("\n")), `${JSON.stringify(r.lines)} !~ ${text}`);
  return r;
}

/** Runs a script of commands expecting a 2xx/3xx for each. */
export function ok2xx(s: Session, ...commands: string[]): Step[] {
  return commands.map((c) => {
    const step = send(s, c);
    ok(step.replies.length === 1 && step.replies[0].code < 400, `${c}: ${JSON.stringify(step)}`);
    return step;
  });
}

/** The envelope of a step that must carry the data effect. */
export function dataEnvelope(step: Step): Envelope {
  const effect = step.effect;
  ok(effect?.kind === "data", `data effect expected: ${JSON.stringify(step)}`);
  return effect.envelope;
}

/**
 * A policy that refuses senders at banned.example (550) and recipients at refused.example
 * (554), and records every call with its context.
 */
export function refusingPolicy() {
  const calls: { kind: string; ctx: PolicyContext; args: string[] }[] = [];
  const policy: SessionPolicy = {
    mail(ctx, sender) {
      calls.push({ kind: "mail", ctx, args: [sender] });
      return sender.endsWith("@banned.example") ? reply(550, "5.7.1", "Sender refused") : undefined;
    },
    rcpt(ctx, recipient, sender) {
      calls.push({ kind: "rcpt", ctx, args: [recipient, sender] });
      return recipient.endsWith("@refused.example")
        ? reply(554, "5.7.1", "Relay access denied")
        : undefined;
    },
  };
  return { policy, calls };
}
