/**
 * Shared setup for the delivery worker tests: a real spool in a temp dir, a real smarthost
 * (smtp-server with STARTTLS + AUTH), and bounded polling of the spool for outcomes.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { concatBytes } from "../../src/bytes.ts";
import { Logger } from "../../src/ops/log.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import type { QueueRecord, RecipientRecord } from "../../src/queue/record.ts";
import { pathExists, Spool, UnknownMessageError } from "../../src/queue/spool.ts";
import { UpstreamSession } from "../../src/relay/upstream.ts";
import { DeliveryWorker, type WorkerOptions } from "../../src/relay/worker.ts";
import { type Smarthost, type SmarthostOptions, startSmarthost } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";
import { storeMessage } from "../queue/_helpers.ts";

export const enc = new TextEncoder();
export const dec = new TextDecoder();
export const PASSWORD = "w0rker-Test-pass";
export const SENDER = "alice@example.com";
export const POLL_MS = 50;

/**
 * A message with our Received: header, 8-bit bytes and dot lines (CRLF line ends only). It
 * has a Message-ID and a Date, so delivery adds nothing: it must arrive byte-exact.
 */
export const MESSAGE = concatBytes([
  enc.encode(
    "Received: from client.test ([127.0.0.1])\r\n\tby carrier.test (Carrier) with ESMTP id X; " +
      "Mon, 1 Jan 2024 00:00:00 +0000\r\n",
  ),
  enc.encode("From: alice@example.com\r\nTo: bob@example.net\r\nSubject: worker test\r\n"),
  enc.encode("Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <worker-test@example.com>\r\n"),
  enc.encode("\r\n"),
  new Uint8Array([0xc3, 0xa9, 0x20, 0xff, 0x80, 0x0d, 0x0a]),
  enc.encode(".leading dot\r\n..two dots\r\n.\r\nlast line\r\n"),
]);

/** Everything one test needs; `worker` is stopped and the smarthost closed afterwards. */
export interface Env {
  spool: Spool;
  pki: TestPki;
  host: Smarthost;
  logs: string[];
  metrics: Metrics;
  /** Builds (and remembers, for cleanup) a worker; `password`/`port` break the upstream. */
  worker(
    opts?: Partial<WorkerOptions> & { password?: string; port?: number; hold?: boolean },
  ): DeliveryWorker;
}

export async function withEnv(
  smarthost: Partial<SmarthostOptions>,
  fn: (env: Env) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-worker-test-" });
  const pki = await makeTestPki();
  const host = await startSmarthost({ pki, users: { relay: PASSWORD }, ...smarthost });
  const workers: DeliveryWorker[] = [];
  const logs: string[] = [];
  const metrics = new Metrics();
  let opened: Spool | undefined;
  try {
    const spool = opened = await Spool.open(join(dir, "spool"));
    const log = new Logger("text", (line) => logs.push(line));
    await fn({
      spool,
      pki,
      host,
      logs,
      metrics,
      worker({ password = PASSWORD, port = host.port, hold = false, ...rest } = {}) {
        const w = new DeliveryWorker({
          spool,
          log,
          metrics,
          upstreams: hold ? [] : [{
            name: `starttls://relay@127.0.0.1:${port}`,
            maxRecipients: 100,
            connect: () =>
              UpstreamSession.open({
                config: {
                  security: "starttls",
                  host: "127.0.0.1",
                  port,
                  servername: "localhost",
                  user: "relay",
                },
                auth: { kind: "password", user: "relay", password },
                ca: pki.caCert,
                clientHostname: "carrier.test",
                connectTimeoutMs: 5000,
                socketTimeoutMs: 10_000,
              }),
          }],
          hostname: "carrier.test",
          concurrency: 2,
          messagesPerConnection: 50,
          // Retries are far away: every outcome seen in a test is the first attempt's.
          retry: { minMs: 60 * 60_000, maxMs: 4 * 60 * 60_000, lifetimeMs: 5 * 86_400_000 },
          pollMs: POLL_MS,
          ...rest,
        });
        workers.push(w);
        return w;
      },
    });
  } finally {
    for (const w of workers) await w.stop(1000);
    opened?.close();
    await host.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Queues a message the way the server does (the record in the file's header); state a new
 * message cannot have (attempts, recipient statuses, times) goes beside it the way
 * delivery writes it. Returns the record as the spool reads it back.
 */
export async function enqueue(
  spool: Spool,
  opts: {
    recipients: (string | RecipientRecord)[];
    sender?: string;
    bytes?: Uint8Array;
    nextAttemptAt?: Date;
    attempts?: number;
    receivedAt?: Date;
  },
): Promise<QueueRecord> {
  const record: Partial<QueueRecord> = {
    sender: opts.sender ?? SENDER,
    recipients: opts.recipients.map((r) =>
      typeof r === "string" ? { address: r, status: "pending" } : r
    ),
    body: "8BITMIME",
    helo: "client.test",
  };
  if (opts.attempts !== undefined) record.attempts = opts.attempts;
  if (opts.nextAttemptAt) record.nextAttemptAt = opts.nextAttemptAt.toISOString();
  if (opts.receivedAt) record.receivedAt = opts.receivedAt.toISOString();
  const stored = await storeMessage(spool, opts.bytes ?? MESSAGE, record);
  deepStrictEqual(await spool.read(stored.id), stored);
  return stored;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it returns a value other than undefined; bounded. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 8000,
): Promise<T> {
  for (let i = 0; i < timeoutMs / 20; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The record, or undefined once the message is gone from the queue. */
export async function readRecord(spool: Spool, id: string): Promise<QueueRecord | undefined> {
  try {
    return await spool.read(id);
  } catch (e) {
    if (e instanceof UnknownMessageError) return undefined;
    throw e;
  }
}

/** Waits until both files of a message are gone. */
export async function waitRemoved(spool: Spool, id: string): Promise<void> {
  await waitUntil(`removal of ${id}`, async () => {
    const gone = !(await pathExists(spool.recordPath(id))) &&
      !(await pathExists(spool.messagePath(id)));
    return gone ? true : undefined;
  });
}

/** Waits until the record shows `attempts` attempts. */
export function waitAttempts(spool: Spool, id: string, attempts: number): Promise<QueueRecord> {
  return waitUntil(`attempt ${attempts} of ${id}`, async () => {
    const r = await readRecord(spool, id);
    return r && r.attempts >= attempts ? r : undefined;
  });
}

export function rcpt(record: QueueRecord, address: string): RecipientRecord {
  const r = record.recipients.find((x) => x.address === address);
  ok(r, `no recipient ${address} in ${JSON.stringify(record.recipients)}`);
  return r;
}
