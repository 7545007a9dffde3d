/** Shared helpers for the tests of the pure protocol layer in src/smtp. */

import type { Line } from "../../src/smtp/line_stream.ts";
import type { ClientInfo, Step } from "../../src/smtp/envelope.ts";
import { OPEN_POLICY } from "../../src/smtp/policy.ts";
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
