/**
 * End-to-end limit tests: the real server as a subprocess; rate limits per client
 * (450 4.7.1) and a connection flood past --max-connections (421 4.7.0).
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { startCarrier, swaks } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import { ReplyReader, writeAll } from "../support/reply_reader.ts";
import { message, storedMessages, waitForCount } from "../support/security.ts";

Deno.test("rate limits: the third MAIL in a minute and the fourth RCPT in an hour get 450 4.7.1", async () => {
  const carrier = await startCarrier({
    args: ["--rate-messages-per-minute", "2", "--rate-recipients-per-hour", "3"],
  });
  const clients: RawClient[] = [];
  try {
    const first = await RawClient.connect(carrier.port);
    clients.push(first);
    await first.reply();
    await first.send(
      "EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.com>\r\n" +
        "RCPT TO:<r2@example.com>\r\nRCPT TO:<r3@example.com>\r\nRCPT TO:<r4@example.com>\r\n" +
        "RSET\r\nMAIL FROM:<a@example.org>\r\nRSET\r\n",
    );
    const replies = await first.replies(9);
    deepStrictEqual(replies.map((r) => r.code), [250, 250, 250, 250, 250, 450, 250, 250, 250]);
    ok(replies[5].raw.startsWith("450 4.7.1 "), replies[5].raw);
    // The limits are per client address, not per connection.
    const second = await RawClient.connect(carrier.port);
    clients.push(second);
    await second.reply();
    await second.send("EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nNOOP\r\n");
    const [, mail, noop] = await second.replies(3);
    strictEqual(mail.code, 450, mail.raw);
    ok(mail.raw.startsWith("450 4.7.1 "), mail.raw);
    strictEqual(noop.code, 250);
    await carrier.waitForLog(/rate limited: recipients/);
    await carrier.waitForLog(/rate limited: messages/);
  } finally {
    for (const c of clients) c.close();
    await carrier.stop();
  }
});

Deno.test("connection flood: 300 connections at once, those over --max-connections get 421 4.7.0 and are closed; then a normal message", async () => {
  const carrier = await startCarrier({
    args: ["--max-connections", "50", "--max-connections-per-client", "50"],
  });
  const readers: ReplyReader[] = [];
  try {
    const conns = await Promise.all(
      Array.from(
        { length: 300 },
        () => Deno.connect({ hostname: "127.0.0.1", port: carrier.port }),
      ),
    );
    readers.push(...conns.map((c) => new ReplyReader(c)));
    const first = await Promise.all(readers.map((r) => r.reply(20_000)));
    const accepted = readers.filter((_, i) => first[i].code === 220);
    const refused = readers.filter((_, i) => first[i].code === 421);
    strictEqual(accepted.length, 50);
    strictEqual(refused.length, 250);
    for (const [i, r] of first.entries()) {
      if (r.code === 421) ok(r.raw.startsWith("421 4.7.0 "), `${i}: ${r.raw}`);
    }
    const closed = await Promise.all(refused.map((r) => r.closed(10_000)));
    strictEqual(closed.filter((c) => c).length, 250);
    // The accepted sessions still work.
    await writeAll(accepted[0].conn, "NOOP\r\n");
    strictEqual((await accepted[0].reply()).code, 250);
    await waitForCount(carrier, / connection refused: too many connections /, 250);
    for (const r of readers) r.close();
    await waitForCount(carrier, / disconnect conn=/, 50);
    const result = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      ...message("after-flood"),
    ]);
    strictEqual(result.code, 0, result.output);
    strictEqual((await storedMessages(carrier.spool)).length, 1);
  } finally {
    for (const r of readers) r.close();
    strictEqual(await carrier.stop(), 0);
  }
});
