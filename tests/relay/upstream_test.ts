import { concatBytes } from "../../src/bytes.ts";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { UpstreamSession } from "../../src/relay/upstream.ts";
import {
  type OutgoingMessage,
  type UpstreamAuth,
  UpstreamError,
  type UpstreamOptions,
} from "../../src/relay/upstream_types.ts";
import type { UpstreamConfig } from "../../src/upstream_url.ts";
import { type Smarthost, type SmarthostOptions, startSmarthost } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";

const enc = new TextEncoder();
const PASSWORD = "s3cret-Pa55word";

/** A message with 8-bit bytes and dot lines, streamed in small chunks. */
const MESSAGE = concatBytes([
  enc.encode("From: a@example.com\r\nTo: b@example.net\r\nSubject: caf\u00e9 test\r\n\r\n"),
  new Uint8Array([0xc3, 0xa9, 0x20, 0xff, 0x80, 0x0d, 0x0a]),
  enc.encode(".leading dot\r\n..two dots\r\n.\r\nlast line\r\n"),
]);

function message(
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

function config(
  host: Smarthost,
  security: UpstreamConfig["security"] = "starttls",
): UpstreamConfig {
  return { security, host: "127.0.0.1", port: host.port, servername: "localhost" };
}

function options(
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
async function withSmarthost(
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

async function withSession(
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

Deno.test("STARTTLS + AUTH PLAIN delivers the exact bytes", async () => {
  await withSmarthost({}, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["b@example.net"]));
      strictEqual(results.length, 1);
      strictEqual(results[0].status, "delivered");
      strictEqual(results[0].code, 250);
      strictEqual(s.sentCount, 1);
    });
    const [mail] = await host.waitFor(1);
    deepStrictEqual(mail.data, MESSAGE);
    strictEqual(mail.from, "sender@example.com");
    deepStrictEqual(mail.to, ["b@example.net"]);
    strictEqual(mail.user, "relay");
    strictEqual(mail.secure, true);
    strictEqual(mail.bodyType, "8bitmime");
    strictEqual(mail.smtputf8, false);
  });
});

Deno.test("AUTH LOGIN when it is the only mechanism", async () => {
  await withSmarthost({ authMethods: ["LOGIN"] }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["b@example.net"]));
      strictEqual(results[0].status, "delivered");
    });
    const [mail] = await host.waitFor(1);
    strictEqual(mail.user, "relay");
    deepStrictEqual(mail.data, MESSAGE);
  });
});

Deno.test("wrong password: permanent UpstreamError 535 without the password", async () => {
  await withSmarthost({ users: { relay: "other-password" } }, async (host, pki) => {
    await rejects(UpstreamSession.open(options(pki, host)), (err: unknown) => {
      ok(err instanceof UpstreamError);
      strictEqual(err.permanent, true);
      strictEqual(err.code, 535);
      ok(!err.message.includes(PASSWORD), err.message);
      ok(!(err.stack ?? "").includes(PASSWORD));
      ok(/authentication failed/i.test(err.message), err.message);
      return true;
    });
    strictEqual(host.received.length, 0);
  });
});

for (const hidePipelining of [false, true]) {
  Deno.test(`per-recipient results 250/450/550 (pipelining ${!hidePipelining})`, async () => {
    const behavior = { rejectRecipients: { "busy@example.net": 450, "nouser@example.net": 550 } };
    await withSmarthost({ behavior, hidePipelining }, async (host, pki) => {
      await withSession(options(pki, host), async (s) => {
        const rcpts = ["ok@example.net", "busy@example.net", "nouser@example.net"];
        const results = await s.send(message(rcpts));
        deepStrictEqual(results.map((r) => [r.recipient, r.status, r.code]), [
          ["ok@example.net", "delivered", 250],
          ["busy@example.net", "deferred", 450],
          ["nouser@example.net", "failed", 550],
        ]);
        ok(results[2].response.startsWith("550"), results[2].response);
        ok(!/[\r\n]/.test(results[2].response));
      });
      const [mail] = await host.waitFor(1);
      deepStrictEqual(mail.to, ["ok@example.net"]);
    });
  });
}

Deno.test("all recipients rejected: one result each, session still usable", async () => {
  const behavior = { rejectRecipients: { "x@example.net": 550, "y@example.net": 451 } };
  await withSmarthost({ behavior }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["x@example.net", "y@example.net"]));
      deepStrictEqual(results.map((r) => [r.status, r.code]), [["failed", 550], ["deferred", 451]]);
      // No explicit reset(): send() resets the unfinished transaction itself.
      const again = await s.send(message(["z@example.net"]));
      strictEqual(again[0].status, "delivered");
    });
    strictEqual(host.received.length, 1);
  });
});

Deno.test("MAIL FROM 451 defers every recipient; null sender is <>", async () => {
  await withSmarthost({ behavior: { tempFailAll: true } }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["a@example.net", "b@example.net"]));
      deepStrictEqual(results.map((r) => [r.status, r.code]), [["deferred", 451], [
        "deferred",
        451,
      ]]);
      host.setBehavior({ tempFailAll: false });
      await s.reset();
      const ok2 = await s.send(message(["a@example.net"], { sender: "" }));
      strictEqual(ok2[0].status, "delivered");
    });
    const [mail] = await host.waitFor(1);
    strictEqual(mail.from, "");
  });
});

for (
  const [reply, expected] of [
    [{ code: 550, message: "5.4.5 Daily user sending limit exceeded" }, "deferred"],
    [{ code: 530, message: "Authentication required" }, "deferred"],
    [{ code: 553, message: "Sender address rejected: not owned by user" }, "failed"],
  ] as const
) {
  Deno.test(`MAIL FROM ${reply.code} "${reply.message}": ${expected}`, async () => {
    await withSmarthost({ behavior: { rejectMailFrom: reply } }, async (host, pki) => {
      await withSession(options(pki, host), async (s) => {
        const results = await s.send(message(["a@example.net"]));
        strictEqual(results[0].status, expected, results[0].response);
        strictEqual(results[0].code, reply.code);
        strictEqual(results[0].sessionLevel === true, expected === "deferred");
      });
    });
  });
}

for (const code of [451, 554]) {
  Deno.test(`DATA reply ${code} applies to the accepted recipients only`, async () => {
    const behavior = { failDataOnce: code, rejectRecipients: { "no@example.net": 550 } };
    await withSmarthost({ behavior }, async (host, pki) => {
      await withSession(options(pki, host), async (s) => {
        const results = await s.send(message(["a@example.net", "no@example.net"]));
        deepStrictEqual(results.map((r) => [r.status, r.code]), [
          [code < 500 ? "deferred" : "failed", code],
          ["failed", 550],
        ]);
        await s.reset();
        const again = await s.send(message(["a@example.net"]));
        strictEqual(again[0].status, "delivered");
      });
      strictEqual(host.received.length, 1);
    });
  });
}

Deno.test("starttls:// to a server without STARTTLS is refused before AUTH", async () => {
  await withSmarthost({ starttls: false }, async (host, pki) => {
    await rejects(UpstreamSession.open(options(pki, host)), (err: unknown) => {
      ok(err instanceof UpstreamError);
      strictEqual(err.permanent, false);
      ok(/does not offer STARTTLS; refusing to send credentials\/mail in clear/.test(err.message));
      ok(!err.message.includes(PASSWORD));
      return true;
    });
    strictEqual(host.received.length, 0);
  });
});

Deno.test("untrusted CA: certificate error, nothing delivered", async () => {
  await withSmarthost({}, async (host, pki) => {
    const opts = options(pki, host, { ca: undefined });
    await rejects(UpstreamSession.open(opts), (err: unknown) => {
      ok(err instanceof UpstreamError);
      strictEqual(err.permanent, false);
      ok(/TLS/.test(err.message) && /certificate|issuer|verify/i.test(err.message), err.message);
      return true;
    });
    strictEqual(host.received.length, 0);
  });
});

Deno.test("certificate name mismatch (servername) is refused", async () => {
  await withSmarthost({}, async (host, pki) => {
    const opts = options(pki, host, {
      config: { ...config(host), servername: "wrong.example" },
    });
    await rejects(UpstreamSession.open(opts), (err: unknown) => {
      ok(err instanceof UpstreamError);
      strictEqual(err.permanent, false);
      ok(/TLS/.test(err.message) && /wrong\.example/.test(err.message), err.message);
      return true;
    });
    strictEqual(host.received.length, 0);
  });
});

Deno.test("host name instead of an IP literal (no node:dns involved)", async () => {
  await withSmarthost({}, async (host, pki) => {
    const opts = options(pki, host, {
      config: { security: "starttls", host: "localhost", port: host.port },
    });
    await withSession(opts, async (s) => {
      strictEqual((await s.send(message(["b@example.net"])))[0].status, "delivered");
    });
    strictEqual(host.received.length, 1);
  });
});

Deno.test("implicit TLS (smtps) delivers", async () => {
  await withSmarthost({ secure: true }, async (host, pki) => {
    const opts = options(pki, host, { config: config(host, "tls") });
    await withSession(opts, async (s) => {
      const results = await s.send(message(["b@example.net"]));
      strictEqual(results[0].status, "delivered");
    });
    const [mail] = await host.waitFor(1);
    strictEqual(mail.secure, true);
    deepStrictEqual(mail.data, MESSAGE);
  });
});

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
