/**
 * Draining an instance with SIGUSR2: the listener closes at once, the queued message
 * is still delivered once the upstream takes it, and then the process exits with 0.
 */

import { ok, strictEqual } from "node:assert/strict";
import { queueFiles, startCarrier } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import { startSmarthost, upstreamArgs } from "../support/smarthost.ts";
import { makeTestPki } from "../support/tls.ts";

const USER = "relay@example.com";
const PASSWORD = "app-password-s3cret";

Deno.test("SIGUSR2 drains: listeners close, the queue is delivered, then carrier exits 0", async () => {
  const pki = await makeTestPki();
  const smarthost = await startSmarthost({
    pki,
    users: { [USER]: PASSWORD },
    behavior: { tempFailAll: true },
  });
  const carrier = await startCarrier({
    args: upstreamArgs(pki, smarthost.port, USER),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
  });
  try {
    const client = await RawClient.connect(carrier.port);
    await client.reply();
    await client.send("EHLO c.test\r\nMAIL FROM:<cron@c.test>\r\nRCPT TO:<ops@example.com>\r\n");
    await client.replies(3);
    await client.send("DATA\r\n");
    strictEqual((await client.reply()).code, 354);
    await client.send("Subject: drain\r\n\r\nbody\r\n.\r\n");
    strictEqual((await client.reply()).code, 250);
    client.close();
    await carrier.waitForLog(/ deferred /);

    carrier.child.kill("SIGUSR2");
    await carrier.waitForLog(/ draining queue=1/);
    // The line is logged as the listeners start closing: the port refuses soon after.
    let refused = false;
    for (let i = 0; i < 40 && !refused; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: carrier.port })).close();
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        refused = true;
      }
    }
    ok(refused, "the listener closed after SIGUSR2");
    ok(!/ drained /.test(carrier.logs()), "not drained while the message waits");

    smarthost.setBehavior({ tempFailAll: false });
    const [mail] = await smarthost.waitFor(1, 15_000);
    ok(new TextDecoder().decode(mail!.data).includes("Subject: drain"));
    await carrier.waitForLog(/ drained /);
    strictEqual((await carrier.child.status).code, 0, "exits by itself once drained");
    strictEqual((await queueFiles(carrier.spool)).filter((n) => n.endsWith(".msg")).length, 0);
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});
