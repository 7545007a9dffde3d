/**
 * End-to-end CHUNKING (RFC 3030): a byte-level client sends BDAT chunks, pipelined, to a
 * real Carrier subprocess that relays to an smtp-server upstream. The bytes delivered are
 * the bytes sent, even "\r\n.\r\n" inside a chunk; limits and ordering errors keep the
 * session usable.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concatBytes } from "../../src/bytes.ts";
import { type CarrierProcess, queueFiles, startCarrier } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import { type Smarthost, startSmarthost, upstreamArgs } from "../support/smarthost.ts";
import { makeTestPki } from "../support/tls.ts";

const USER = "relay@example.com";
const PASSWORD = "bdat-app-password";
const enc = new TextEncoder();

async function withPair(
  carrierArgs: string[],
  fn: (carrier: CarrierProcess, host: Smarthost) => Promise<void>,
): Promise<void> {
  const pki = await makeTestPki();
  const host = await startSmarthost({ pki, users: { [USER]: PASSWORD } });
  const carrier = await startCarrier({
    args: upstreamArgs(pki, host.port, USER, carrierArgs),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
  });
  try {
    await fn(carrier, host);
  } finally {
    await carrier.stop();
    await host.close();
  }
}

async function session(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  strictEqual((await client.reply()).code, 220);
  await client.send("EHLO client.test\r\n");
  const ehlo = await client.reply();
  ok(ehlo.lines.includes("CHUNKING"), ehlo.raw);
  return client;
}

/**
 * The message as the client sent it: after Carrier's own Received: header (its first two
 * lines) and the Message-ID and Date that delivery adds to a message without them.
 */
function afterReceived(data: Uint8Array): Uint8Array {
  const text = new TextDecoder("latin1").decode(data);
  ok(text.startsWith("Received: "), text);
  const end = text.search(/\r\n(?![\t ])/) + 2;
  const added = /^Message-ID: <[0-9A-Z]+@carrier\.test>\r\nDate: [^\r\n]+ \+0000\r\n/.exec(
    text.slice(end),
  );
  ok(added, text);
  return data.subarray(end + added[0].length);
}

Deno.test("bdat: pipelined chunks are delivered byte-exact, '.' lines and all", async () => {
  await withPair([], async (carrier, host) => {
    const client = await session(carrier.port);
    try {
      const parts = [
        enc.encode("From: a@example.org\r\nSubject: chunked\r\n\r\nfirst\r\n.\r\n"),
        enc.encode("..two dots\r\n.lead"),
        concatBytes([enc.encode("ing dot\r\n"), new Uint8Array([0xc3, 0xa9, 0x0d, 0x0a])]),
      ];
      const wire = concatBytes([
        enc.encode("MAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<b@example.net>\r\n"),
        enc.encode(`BDAT ${parts[0].length}\r\n`),
        parts[0],
        enc.encode(`BDAT ${parts[1].length}\r\n`),
        parts[1],
        enc.encode(`BDAT ${parts[2].length} LAST\r\n`),
        parts[2],
      ]);
      await client.send(wire);
      const replies = await client.replies(5);
      deepStrictEqual(replies.map((r) => r.code), [250, 250, 250, 250, 250]);
      ok(replies[2].raw.includes("chunk received"), replies[2].raw);
      ok(/queued as \S+/.test(replies[4].raw), replies[4].raw);

      const [mail] = await host.waitFor(1, 15_000);
      deepStrictEqual(mail.to, ["b@example.net"]);
      strictEqual(mail.bodyType, "8bitmime");
      deepStrictEqual(afterReceived(mail.data), concatBytes(parts));
      ok(/with ESMTP/.test(new TextDecoder().decode(mail.data.subarray(0, 200))));
      await client.send("QUIT\r\n");
    } finally {
      client.close();
    }
  });
});

Deno.test("bdat: BDAT 0 LAST ends the message; DATA after BDAT is out of sequence", async () => {
  await withPair([], async (carrier, host) => {
    const client = await session(carrier.port);
    try {
      const body = enc.encode("Subject: zero last\r\n\r\nbody\r\n");
      await client.send(
        concatBytes([
          enc.encode("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
          enc.encode(`BDAT ${body.length}\r\n`),
          body,
          enc.encode("DATA\r\nBDAT 0 LAST\r\n"),
        ]),
      );
      deepStrictEqual((await client.replies(5)).map((r) => r.code), [250, 250, 250, 503, 250]);
      const [mail] = await host.waitFor(1, 15_000);
      deepStrictEqual(afterReceived(mail.data), body);
    } finally {
      client.close();
    }
  });
});

Deno.test("bdat: a message over --max-message-size gets 552, is not queued, and the session goes on", async () => {
  await withPair(["--max-message-size", "1K"], async (carrier, host) => {
    const client = await session(carrier.port);
    try {
      const big = new Uint8Array(700).fill(0x61);
      await client.send(
        concatBytes([
          enc.encode("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
          enc.encode(`BDAT 700\r\n`),
          big,
          enc.encode(`BDAT 700 LAST\r\n`),
          big,
        ]),
      );
      const replies = await client.replies(4);
      deepStrictEqual(replies.map((r) => r.code), [250, 250, 250, 552], replies[3].raw);
      deepStrictEqual(await queueFiles(carrier.spool), [], "nothing of it is kept");

      // The chunk was read and discarded: the next transaction works on the same connection.
      const small = enc.encode("Subject: small\r\n\r\nok\r\n");
      await client.send(
        concatBytes([
          enc.encode("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
          enc.encode(`BDAT ${small.length} LAST\r\n`),
          small,
        ]),
      );
      deepStrictEqual((await client.replies(3)).map((r) => r.code), [250, 250, 250]);
      const [mail] = await host.waitFor(1, 15_000);
      deepStrictEqual(afterReceived(mail.data), small);
    } finally {
      client.close();
    }
  });
});

Deno.test("bdat: RSET between chunks drops the half message", async () => {
  await withPair([], async (carrier, host) => {
    const client = await session(carrier.port);
    try {
      const half = enc.encode("Subject: half\r\n\r\n");
      await client.send(
        concatBytes([
          enc.encode("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
          enc.encode(`BDAT ${half.length}\r\n`),
          half,
          enc.encode("RSET\r\nBDAT 4 LAST\r\nabcd"),
        ]),
      );
      deepStrictEqual((await client.replies(5)).map((r) => r.code), [250, 250, 250, 250, 503]);
      await client.send("QUIT\r\n");
      strictEqual((await client.reply()).code, 221);
      await new Promise((r) => setTimeout(r, 300));
      deepStrictEqual(await queueFiles(carrier.spool), []);
      strictEqual(host.received.length, 0);
    } finally {
      client.close();
    }
  });
});
