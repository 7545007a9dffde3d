/**
 * The PROXY protocol against the real server with raw clients: the header's address
 * decides relaying and is what the spool records; connections from a listed balancer
 * without a valid header are closed; from anyone else a header is just a bad command.
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import { queueFiles, runCarrier, startCarrier } from "../support/carrier.ts";
import { proxyV1, proxyV2 } from "../support/proxy_header.ts";
import { RawClient } from "../support/raw_client.ts";

/** Sends one message after the greeting; returns the RCPT reply code and the DATA one. */
async function transaction(client: RawClient): Promise<number[]> {
  strictEqual((await client.reply()).code, 220);
  await client.send("EHLO client.test\r\n");
  strictEqual((await client.reply()).code, 250);
  await client.send("MAIL FROM:<cron@client.test>\r\n");
  strictEqual((await client.reply()).code, 250);
  await client.send("RCPT TO:<ops@example.com>\r\n");
  const rcpt = (await client.reply()).code;
  if (rcpt !== 250) return [rcpt];
  await client.send("DATA\r\n");
  strictEqual((await client.reply()).code, 354);
  await client.send("Subject: t\r\n\r\nhello\r\n.\r\n");
  return [rcpt, (await client.reply()).code];
}

Deno.test("PROXY header: its address decides relaying and is recorded, not the balancer's", async () => {
  // The test client (the "balancer") is 127.0.0.1; only 127.0.0.3 may relay.
  const carrier = await startCarrier({
    args: ["--proxy-protocol-from", "127.0.0.1/32", "--relay-networks", "127.0.0.3/32"],
  });
  try {
    const outside = await RawClient.connect(carrier.port);
    await outside.send(proxyV2({ src: { address: "203.0.113.5", port: 4000 } }));
    strictEqual((await transaction(outside))[0], 554);
    outside.close();
    await carrier.waitForLog(/relay denied client=203\.0\.113\.5/);

    const inside = await RawClient.connect(carrier.port);
    await inside.send(proxyV1({ address: "127.0.0.3", port: 4001 }));
    ok((await transaction(inside)).every((c) => c === 250));
    inside.close();
    await carrier.waitForLog(/queued .*client=127\.0\.0\.3/);
    const msg = (await queueFiles(carrier.spool)).find((n) => n.endsWith(".msg"))!;
    const stored = await Deno.readTextFile(`${carrier.spool}/queue/${msg}`);
    ok(stored.includes('"address":"127.0.0.3"'), stored.slice(0, 300));
    ok(stored.includes("Received: from client.test ([127.0.0.3])"), stored.slice(0, 400));

    // v2 LOCAL (a health check) keeps the real peer: 127.0.0.1, not a relay network.
    const check = await RawClient.connect(carrier.port);
    await check.send(proxyV2({ command: "local" }));
    strictEqual((await transaction(check))[0], 554);
    check.close();
    await carrier.waitForLog(/relay denied client=127\.0\.0\.1/);
  } finally {
    await carrier.stop();
  }
});

Deno.test("PROXY header: missing, malformed, truncated or slow from a balancer closes the connection", async () => {
  const carrier = await startCarrier({
    args: ["--proxy-protocol-from", "127.0.0.1/32", "--command-timeout", "1s"],
  });
  try {
    const attempts: (string | Uint8Array)[] = [
      "EHLO no-header.test\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
      "PROXY UNKNOWN " + "x".repeat(120),
      proxyV2({ src: { address: "192.0.2.1", port: 1 } }).subarray(0, 20), // truncated: sent, then slow
      (() => {
        const b = proxyV2({ src: { address: "192.0.2.1", port: 1 } });
        b[12] = 0x31; // version 3
        return b;
      })(),
    ];
    for (const bytes of attempts) {
      const client = await RawClient.connect(carrier.port);
      await client.send(bytes);
      ok(await client.closedByPeer(), `closed after ${String(bytes).slice(0, 30)}`);
      // Nothing at all was sent back: no greeting before a valid header.
      await rejects(client.reply(100), /connection closed; unparsed: ""/);
      client.close();
    }
    await carrier.waitForLog(/proxy header refused .*bad version 3/);
    const refused = [...carrier.logs().matchAll(/proxy header refused/g)].length;
    strictEqual(refused, attempts.length);
    ok(/proxy header refused .*no complete header within/.test(carrier.logs()));
    strictEqual((await queueFiles(carrier.spool)).length, 0);
    // The server keeps serving.
    const good = await RawClient.connect(carrier.port);
    await good.send(proxyV1({ address: "127.0.0.1", port: 5 }));
    ok((await transaction(good)).every((c) => c === 250));
    good.close();
  } finally {
    await carrier.stop();
  }
});

Deno.test("PROXY header from a peer not listed is only a bad command; its own address stays", async () => {
  const carrier = await startCarrier({
    args: ["--proxy-protocol-from", "192.0.2.0/24", "--relay-networks", "10.0.0.0/8"],
  });
  try {
    const client = await RawClient.connect(carrier.port);
    strictEqual((await client.reply()).code, 220);
    await client.send("PROXY TCP4 10.1.1.1 127.0.0.1 1000 25\r\n");
    const reply = await client.reply();
    ok(reply.code >= 500 && reply.code < 600, reply.raw);
    strictEqual((await transaction2(client))[0], 554);
    client.close();
    await carrier.waitForLog(/relay denied client=127\.0\.0\.1/);
  } finally {
    await carrier.stop();
  }
});

/** `transaction` for a session that has been greeted already. */
async function transaction2(client: RawClient): Promise<number[]> {
  await client.send("EHLO client.test\r\n");
  strictEqual((await client.reply()).code, 250);
  await client.send("MAIL FROM:<cron@client.test>\r\n");
  strictEqual((await client.reply()).code, 250);
  await client.send("RCPT TO:<ops@example.com>\r\n");
  return [(await client.reply()).code];
}

Deno.test("--proxy-protocol-from with a bad network is a configuration error (exit 2)", async () => {
  const spool = await Deno.makeTempDir({ prefix: "carrier-spool-" });
  const out = await runCarrier([
    "serve",
    "--spool",
    spool,
    "--listen",
    "127.0.0.1:0",
    "--proxy-protocol-from",
    "10.0.0.0/33",
  ]);
  strictEqual(out.code, 2, out.stderr);
  ok(/proxy-protocol-from: invalid network "10\.0\.0\.0\/33"/.test(out.stderr), out.stderr);
});
