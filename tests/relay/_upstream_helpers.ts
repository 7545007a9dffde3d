/**
 * Shared setup for the upstream client tests: a real smtp-server smarthost with STARTTLS
 * and AUTH, and the options and message the client is given.
 */
import { concatBytes } from "../../src/bytes.ts";
import { UpstreamSession } from "../../src/relay/upstream.ts";
import type {
  OutgoingMessage,
  UpstreamAuth,
  UpstreamOptions,
} from "../../src/relay/upstream_types.ts";
import type { UpstreamConfig } from "../../src/upstream_url.ts";
import { type Smarthost, type SmarthostOptions, startSmarthost } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";

export const enc = new TextEncoder();
export const PASSWORD = "s3cret-Pa55word";

/** A message with 8-bit bytes and dot lines, streamed in small chunks. */
export const MESSAGE = concatBytes([
  enc.encode("From: a@example.com\r\nTo: b@example.net\r\nSubject: caf\u00e9 test\r\n\r\n"),
  new Uint8Array([0xc3, 0xa9, 0x20, 0xff, 0x80, 0x0d, 0x0a]),
  enc.encode(".leading dot\r\n..two dots\r\n.\r\nlast line\r\n"),
]);

export function message(
  recipients: string[],
  extra: Partial<OutgoingMessage> = {},
  bytes = MESSAGE,
): OutgoingMessage {
  return {
    sender: "sender@example.com",
    recipients,
    smtputf8: false,
    eightBit: true,
    size: bytes.length,
    open() {
      let pos = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pos >= bytes.length) return controller.close();
          controller.enqueue(bytes.slice(pos, pos + 7));
          pos += 7;
        },
      });
    },
    ...extra,
  };
}

export function config(
  host: Smarthost,
  security: UpstreamConfig["security"] = "starttls",
): UpstreamConfig {
  return { security, host: "127.0.0.1", port: host.port, servername: "localhost" };
}

export function options(
  pki: TestPki,
  host: Smarthost,
  extra: Partial<UpstreamOptions> = {},
): UpstreamOptions {
  const auth: UpstreamAuth = { kind: "password", user: "relay", password: PASSWORD };
  return {
    config: config(host),
    auth,
    ca: pki.caCert,
    clientHostname: "carrier.test",
    connectTimeoutMs: 5000,
    socketTimeoutMs: 10_000,
    ...extra,
  };
}

/** Runs `fn` with a smarthost (users: relay/PASSWORD) that is closed afterwards. */
export async function withSmarthost(
  opts: Partial<SmarthostOptions>,
  fn: (host: Smarthost, pki: TestPki) => Promise<void>,
): Promise<void> {
  const pki = await makeTestPki();
  const host = await startSmarthost({ pki, users: { relay: PASSWORD }, ...opts });
  try {
    await fn(host, pki);
  } finally {
    await host.close();
  }
}

export async function withSession(
  opts: UpstreamOptions,
  fn: (s: UpstreamSession) => Promise<void>,
): Promise<void> {
  const session = await UpstreamSession.open(opts);
  try {
    await fn(session);
  } finally {
    await session.close();
  }
}
