/** Sending a test message over SMTP with the raw client, and waiting for a condition, bounded. */

import { strictEqual } from "node:assert/strict";
import { RawClient } from "./raw_client.ts";

/**
 * Sends one message (`body` is the message without the final dot line) with the raw client;
 * asserts every reply and returns the queue id from the `250 ... queued as ID` reply.
 */
export async function sendRaw(
  port: number,
  from: string,
  to: string[],
  body: string,
): Promise<string> {
  const client = await RawClient.connect(port);
  try {
    await client.reply();
    await client.send(`EHLO client.test\r\nMAIL FROM:<${from}>\r\n`);
    await client.replies(2);
    for (const rcpt of to) {
      await client.send(`RCPT TO:<${rcpt}>\r\n`);
      strictEqual((await client.reply()).code, 250);
    }
    await client.send("DATA\r\n");
    strictEqual((await client.reply()).code, 354);
    await client.send(body + ".\r\n");
    const done = await client.reply();
    strictEqual(done.code, 250, done.raw);
    await client.send("QUIT\r\n");
    return /queued as (\S+)/.exec(done.raw)![1];
  } finally {
    client.close();
  }
}

/** Polls `check` every 100 ms until it holds; throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
