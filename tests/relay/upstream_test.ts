/**
 * The upstream client against a real smarthost: TLS modes, AUTH mechanisms, per-recipient
 * results and certificate checks.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { UpstreamSession } from "../../src/relay/upstream.ts";
import { UpstreamError } from "../../src/relay/upstream_types.ts";
import {
  config,
  MESSAGE,
  message,
  options,
  PASSWORD,
  withSession,
  withSmarthost,
} from "./_upstream_helpers.ts";

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

Deno.test("MAIL FROM 421 (the server then closes): the 421 reply is the result, not a broken connection", async () => {
  const rejectMailFrom = { code: 421, message: "Too many connections, slow down" };
  await withSmarthost({ behavior: { rejectMailFrom } }, async (host, pki) => {
    await withSession(options(pki, host), async (s) => {
      const results = await s.send(message(["a@example.net", "b@example.net"]));
      deepStrictEqual(
        results.map((r) => [r.status, r.code, r.refusedMail, r.response]),
        [["a@example.net"], ["b@example.net"]].map(() => [
          "deferred",
          421,
          true,
          "421 4.4.2 Too many connections, slow down",
        ]),
      );
      strictEqual(s.usable, false, "the server closed the connection");
    });
  });
});

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
