/**
 * The upstream client when things go wrong or are reused: dropped connections, failing
 * streams, reuse with and without RSET, SMTPUTF8, 8BITMIME, XOAUTH2 and stalled servers.
 */
import { concatBytes } from "../../src/bytes.ts";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { UpstreamSession } from "../../src/relay/upstream.ts";
import {
  type UpstreamAuth,
  UpstreamError,
  type UpstreamOptions,
} from "../../src/relay/upstream_types.ts";
import { makeTestPki } from "../support/tls.ts";
import {
  config,
  enc,
  MESSAGE,
  message,
  options,
  withSession,
  withSmarthost,
} from "./_upstream_helpers.ts";

Deno.test("connection dropped in the middle of DATA: temporary UpstreamError", async () => {
  await withSmarthost({ behavior: { dropMidData: 1 } }, async (host, pki) => {
    const big = concatBytes([
      MESSAGE,
      enc.encode("x".repeat(70) + "\r\n").slice(),
      ...new Array(2000).fill(enc.encode("y".repeat(70) + "\r\n")),
    ]);
    await withSession(options(pki, host), async (s) => {
      await rejects(s.send(message(["b@example.net"], {}, big)), (err: unknown) => {
        ok(err instanceof UpstreamError);
        strictEqual(err.permanent, false);
        return true;
      });
      strictEqual(s.usable, false);
      await rejects(s.send(message(["b@example.net"])), UpstreamError);
    });
    strictEqual(host.received.length, 0);
  });
});

Deno.test("message stream failing mid-way: temporary error, nothing delivered", async () => {
  await withSmarthost({}, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      let sent = 0;
      const msg = message(["b@example.net"], {
        open: () =>
          new ReadableStream<Uint8Array>({
            pull(controller) {
              if (sent++ < 3) controller.enqueue(enc.encode("Subject: partial\r\n"));
              else controller.error(new Error("spool read failed"));
            },
          }),
      });
      await rejects(s.send(msg), (err: unknown) => {
        ok(err instanceof UpstreamError);
        strictEqual(err.permanent, false);
        ok(/spool read failed/.test(err.message), err.message);
        return true;
      });
      strictEqual(s.usable, false);
    });
    // Give the server a moment: a truncated message must never be accepted.
    await new Promise((r) => setTimeout(r, 200));
    strictEqual(host.received.length, 0);
  });
});

Deno.test("connection reuse: 3 messages with reset() on one connection", async () => {
  await withSmarthost({}, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      for (let i = 0; i < 3; i++) {
        if (i > 0) await s.reset();
        const body = enc.encode(`Subject: n${i}\r\n\r\nbody ${i}\r\n`);
        const results = await s.send(message([`r${i}@example.net`], {}, body));
        strictEqual(results[0].status, "delivered");
      }
      strictEqual(s.sentCount, 3);
    });
    const mails = await host.waitFor(3);
    deepStrictEqual(mails.map((m) => m.to[0]), [
      "r0@example.net",
      "r1@example.net",
      "r2@example.net",
    ]);
    strictEqual(new TextDecoder().decode(mails[2].data), "Subject: n2\r\n\r\nbody 2\r\n");
    strictEqual(host.connections, 1);
  });
});

Deno.test("connection reuse: after a completed transaction the next MAIL needs no RSET", async () => {
  const behavior = { rejectRecipients: { "nobody@example.net": 550 } };
  await withSmarthost({ behavior }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      for (let i = 0; i < 3; i++) {
        const body = enc.encode(`Subject: n${i}\r\n\r\nbody ${i}\r\n`);
        const results = await s.send(message([`r${i}@example.net`], {}, body));
        strictEqual(results[0].status, "delivered");
      }
      // A transaction that ends before DATA (every recipient refused) is reset first.
      const refused = await s.send(message(["nobody@example.net"]));
      strictEqual(refused[0].status, "failed");
      const after = await s.send(message(["last@example.net"]));
      strictEqual(after[0].status, "delivered");
      strictEqual(s.sentCount, 5);
    });
    await host.waitFor(4);
    deepStrictEqual(host.received.map((m) => m.to[0]), [
      "r0@example.net",
      "r1@example.net",
      "r2@example.net",
      "last@example.net",
    ]);
    const mailAndRset = host.commands.filter((c) => c === "MAIL" || c === "RSET");
    deepStrictEqual(mailAndRset, ["MAIL", "MAIL", "MAIL", "MAIL", "RSET", "MAIL"]);
    strictEqual(host.connections, 1);
  });
});

Deno.test("SMTPUTF8 is sent when the message needs it, even with ASCII addresses", async () => {
  await withSmarthost({}, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["b@example.net"], { smtputf8: true }));
      strictEqual(results[0].status, "delivered");
      const utf = await s.send(message(["j\u00fcrgen@example.net"]));
      strictEqual(utf[0].status, "delivered");
    });
    const mails = await host.waitFor(2);
    strictEqual(mails[0].smtputf8, true);
    strictEqual(mails[1].smtputf8, true);
    deepStrictEqual(mails[1].to, ["j\u00fcrgen@example.net"]);
  });
});

Deno.test("SMTPUTF8 needed but not offered: every recipient fails permanently", async () => {
  await withSmarthost({ hideSmtputf8: true }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["a@example.net", "b@example.net"], { smtputf8: true }));
      deepStrictEqual(results.map((r) => r.status), ["failed", "failed"]);
      ok(/SMTPUTF8/.test(results[0].response));
      const plain = await s.send(message(["a@example.net"]));
      strictEqual(plain[0].status, "delivered");
    });
    const [mail] = await host.waitFor(1);
    strictEqual(mail.smtputf8, false);
  });
});

Deno.test("8-bit body but no 8BITMIME offered: every recipient fails 5.6.3, nothing is sent", async () => {
  await withSmarthost({ hide8bitmime: true }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["a@example.net", "b@example.net"]));
      deepStrictEqual(results.map((r) => r.status), ["failed", "failed"]);
      for (const r of results) {
        strictEqual(
          r.response,
          "5.6.3 upstream server does not support 8BITMIME, which this message's 8-bit body requires",
        );
      }
      strictEqual(host.commands.filter((c) => c === "MAIL").length, 0, "no transaction begun");
      // A 7-bit message goes through the same session unchanged.
      const ascii = enc.encode("Subject: plain\r\n\r\nascii only\r\n");
      const plain = await s.send(message(["a@example.net"], { eightBit: false }, ascii));
      strictEqual(plain[0].status, "delivered");
    });
    const mails = await host.waitFor(1);
    strictEqual(mails.length, 1);
    strictEqual(mails[0].bodyType, "7bit");
    deepStrictEqual(mails[0].data, enc.encode("Subject: plain\r\n\r\nascii only\r\n"));
  });
});

Deno.test("plain smtp on loopback without auth", async () => {
  await withSmarthost({ users: undefined, starttls: false }, async (host, pki) => {
    const opts = options(pki, host, { config: config(host, "plain"), auth: undefined });
    await withSession(opts, async (s) => {
      strictEqual((await s.send(message(["b@example.net"])))[0].status, "delivered");
    });
    const [mail] = await host.waitFor(1);
    strictEqual(mail.secure, false);
    strictEqual(mail.user, undefined);
  });
});

Deno.test("XOAUTH2 with a refresh token from a local token endpoint", async () => {
  const seen: string[] = [];
  const ac = new AbortController();
  const tokenServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      seen.push(await req.text());
      return Response.json({ access_token: "access-123", expires_in: 3600 });
    },
  );
  try {
    await withSmarthost(
      { users: { "me@example.com": "access-123" }, authMethods: ["XOAUTH2"] },
      async (host, pki) => {
        const auth: UpstreamAuth = {
          kind: "xoauth2",
          user: "me@example.com",
          clientId: "cid",
          clientSecret: "client-secret-value",
          refreshToken: "refresh-token-value",
          accessUrl: `http://127.0.0.1:${tokenServer.addr.port}/token`,
        };
        for (let i = 0; i < 2; i++) {
          await withSession(options(pki, host, { auth }), async (s) => {
            strictEqual((await s.send(message(["b@example.net"])))[0].status, "delivered");
          });
        }
        const mails = await host.waitFor(2);
        strictEqual(mails[0].user, "me@example.com");
        strictEqual(host.connections, 2);
      },
    );
    strictEqual(seen.length, 1, "the access token is fetched once and reused");
    ok(seen[0].includes("refresh_token=refresh-token-value"), seen[0]);
  } finally {
    ac.abort();
    await tokenServer.finished;
  }
});

Deno.test("connection refused: temporary UpstreamError", async () => {
  const pki = await makeTestPki();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const opts: UpstreamOptions = {
    config: { security: "starttls", host: "127.0.0.1", port, servername: "localhost" },
    ca: pki.caCert,
    clientHostname: "carrier.test",
    connectTimeoutMs: 2000,
  };
  await rejects(UpstreamSession.open(opts), (err: unknown) => {
    ok(err instanceof UpstreamError);
    strictEqual(err.permanent, false);
    ok(/cannot connect/.test(err.message), err.message);
    return true;
  });
});

/** A TCP server that greets (or not) and then never answers; for timeout tests. */
function stallingServer(greet: boolean) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const done = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      if (!greet) continue;
      try {
        await conn.write(enc.encode("220 stall ESMTP\r\n"));
        await conn.read(new Uint8Array(1024)); // EHLO
        await conn.write(enc.encode("250-stall\r\n250 8BITMIME\r\n"));
      } catch {
        // client gone
      }
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async close() {
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed by the client
        }
      }
      listener.close();
      await done;
    },
  };
}

Deno.test("no greeting: open fails with a temporary error in bounded time", async () => {
  const server = stallingServer(false);
  try {
    const started = Date.now();
    await rejects(
      UpstreamSession.open({
        config: { security: "plain", host: "127.0.0.1", port: server.port },
        clientHostname: "carrier.test",
        connectTimeoutMs: 300,
        socketTimeoutMs: 300,
      }),
      (err: unknown) => err instanceof UpstreamError && !err.permanent,
    );
    ok(Date.now() - started < 3000);
  } finally {
    await server.close();
  }
});

Deno.test("server stalls mid-transaction: socket timeout, temporary error", async () => {
  const server = stallingServer(true);
  try {
    await withSession({
      config: { security: "plain", host: "127.0.0.1", port: server.port },
      clientHostname: "carrier.test",
      connectTimeoutMs: 2000,
      socketTimeoutMs: 300,
    }, async (s) => {
      const started = Date.now();
      await rejects(s.send(message(["b@example.net"])), (err: unknown) => {
        ok(err instanceof UpstreamError);
        strictEqual(err.permanent, false);
        ok(/timeout/i.test(err.message), err.message);
        return true;
      });
      ok(Date.now() - started < 3000);
    });
  } finally {
    await server.close();
  }
});
