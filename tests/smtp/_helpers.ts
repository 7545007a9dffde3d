/** Shared helpers for the tests of the pure protocol layer in src/smtp. */

import { ok, strictEqual } from "node:assert/strict";
import type { Line } from "../../src/smtp/line_stream.ts";
import { formatReply, type Reply, reply } from "../../src/smtp/reply.ts";
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

/**
 * Plays an SMTP transcript against a session, so a test reads like the wire. `C: text`
 * sends a command line; the `S:` lines after it are the replies it must get, in order and
 * no more (none for a command that only yields an effect). `S:` lines before the first
 * `C:` are the greeting. A reply written out in full (`S: 250 2.1.0 Ok`, or `S: 250-...`
 * continuation lines then the last line) must be exactly what the server writes; the
 * short forms `S: 250` and `S: 250 2.1.0` check the code and the enhanced code only (none
 * given means the reply has none). Returns the step of each `C:` line.
 */
export function transcript(s: Session, script: readonly string[]): Step[] {
  const steps: Step[] = [];
  let i = 0;
  /** The S: lines up to the next C:, grouped into replies (continuation lines end in "-"). */
  const expected = (): string[][] => {
    const replies: string[][] = [];
    let group: string[] = [];
    while (i < script.length && script[i].startsWith("S: ")) {
      const text = script[i++].slice(3);
      group.push(text);
      if (!/^\d{3}-/.test(text)) {
        replies.push(group);
        group = [];
      }
    }
    if (group.length > 0) throw new Error(`transcript: "S: ${group.at(-1)}" continues nothing`);
    return replies;
  };
  const check = (command: string, replies: readonly Reply[], wanted: string[][]) => {
    strictEqual(
      replies.length,
      wanted.length,
      `${command}: ${wanted.length} replies expected, got ${JSON.stringify(replies)}`,
    );
    wanted.forEach((lines, k) => {
      const r = replies[k];
      const where = `${command} -> "S: ${lines.join(" | ")}", got ${JSON.stringify(r)}`;
      const short = /^(\d{3})(?: ([245]\.\d{1,3}\.\d{1,3}))?$/.exec(lines[0]);
      if (lines.length === 1 && short) {
        strictEqual(r.code, Number(short[1]), where);
        strictEqual(r.enhanced, short[2], where);
      } else {
        strictEqual(formatReply(r), lines.map((l) => `${l}\r\n`).join(""), where);
      }
    });
  };
  const greeting = expected();
  if (greeting.length > 0) check("greeting", [s.greeting()], greeting);
  while (i < script.length) {
    const line = script[i++];
    if (!line.startsWith("C: ")) throw new Error(`transcript: expected "C: ...", got "${line}"`);
    const step = send(s, line.slice(3));
    check(line, step.replies, expected());
    steps.push(step);
  }
  return steps;
}
