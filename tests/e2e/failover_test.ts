/**
 * End-to-end upstream failover: a real Carrier subprocess with two `--upstream`s, each a
 * real smtp-server smarthost (STARTTLS, AUTH, its own account and password). When the first
 * cannot take mail (down, login refused, TLS refused, throttling) the second delivers at
 * once; a recipient's own refusal on the first never moves mail to the second.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { type CarrierProcess, freePort, queueFiles, startCarrier } from "../support/carrier.ts";
import {
  type Smarthost,
  type SmarthostBehavior,
  startSmarthost,
  upstreamListArgs,
} from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";
import {
  escaped,
  FIRST_PASSWORD,
  FIRST_USER,
  logLines,
  SECOND_PASSWORD,
  SECOND_USER,
  SENDER,
  sendMail,
  unavailable,
  upstreamName,
  waitUntil,
} from "./_failover_helpers.ts";

/** The second upstream: account SECOND_USER, its own password. */
function second(pki: TestPki): Promise<Smarthost> {
  return startSmarthost({ pki, users: { [SECOND_USER]: SECOND_PASSWORD } });
}

/** Carrier relaying to `firstPort` then `secondPort`, passwords from the environment. */
function carrierFor(
  pki: TestPki,
  firstPort: number,
  secondPort: number,
  opts: { env?: Record<string, string>; extra?: string[] } = {},
): Promise<CarrierProcess> {
  const list = [{ port: firstPort, user: FIRST_USER }, { port: secondPort, user: SECOND_USER }];
  return startCarrier({
    args: upstreamListArgs(pki, list, opts.extra),
    env: opts.env ??
      { CARRIER_UPSTREAM_PASSWORD: FIRST_PASSWORD, CARRIER_UPSTREAM_PASSWORD_2: SECOND_PASSWORD },
  });
}

/** The delivered log line of `id` names upstream `name`; the message is removed. */
async function deliveredVia(carrier: CarrierProcess, id: string, to: string, name: string) {
  const line = await carrier.waitForLog(new RegExp(`delivered id=${id} to=<${escaped(to)}>`));
  ok(line.includes(` upstream=${name} `), line);
  await carrier.waitForLog(new RegExp(`removed id=${id} delivered=1 failed=0`));
  deepStrictEqual(await queueFiles(carrier.spool), []);
}

Deno.test("failover: first upstream down (closed port): the second delivers at once", async () => {
  const pki = await makeTestPki();
  const host = await second(pki);
  const closed = freePort();
  const carrier = await carrierFor(pki, closed, host.port);
  try {
    const id = await sendMail(carrier.port, ["bob@example.net"]);
    const [mail] = await host.waitFor(1, 20_000);
    deepStrictEqual(mail.to, ["bob@example.net"]);
    strictEqual(mail.from, SENDER);
    strictEqual(mail.user, SECOND_USER);
    const down = await unavailable(carrier, upstreamName(FIRST_USER, closed));
    ok(down.includes(`cannot connect to upstream 127.0.0.1:${closed}`), down);
    await deliveredVia(carrier, id, "bob@example.net", upstreamName(SECOND_USER, host.port));
    strictEqual(logLines(carrier, /upstream unavailable/).length, 1, carrier.logs());
    ok(!carrier.logs().includes("deferred"), carrier.logs());
  } finally {
    await carrier.stop();
    await host.close();
  }
});

for (const via of ["environment", "files"] as const) {
  Deno.test(`failover: first refuses the login (535): the second delivers with its own password (${via})`, async () => {
    const pki = await makeTestPki();
    const first = await startSmarthost({ pki, users: { [FIRST_USER]: FIRST_PASSWORD } });
    const host = await second(pki);
    const dir = await Deno.makeTempDir({ prefix: "carrier-failover-pw-" });
    // Wrong for the first, right for the second: the second's password is its own.
    const wrong = "not-the-first-password";
    let carrier: CarrierProcess | undefined;
    try {
      if (via === "environment") {
        carrier = await carrierFor(pki, first.port, host.port, {
          env: { CARRIER_UPSTREAM_PASSWORD: wrong, CARRIER_UPSTREAM_PASSWORD_2: SECOND_PASSWORD },
        });
      } else {
        await Deno.writeTextFile(`${dir}/first`, `${wrong}\n`);
        await Deno.writeTextFile(`${dir}/second`, `${SECOND_PASSWORD}\n`);
        carrier = await carrierFor(pki, first.port, host.port, {
          env: {},
          extra: [
            "--upstream-password-file",
            `${dir}/first`,
            "--upstream-password-file",
            `${dir}/second`,
          ],
        });
      }
      const id = await sendMail(carrier.port, ["bob@example.net"]);
      const [mail] = await host.waitFor(1, 20_000);
      strictEqual(mail.user, SECOND_USER);
      const refused = await unavailable(carrier, upstreamName(FIRST_USER, first.port));
      match(refused, /upstream authentication failed: 535 5\.7\.8/);
      await deliveredVia(carrier, id, "bob@example.net", upstreamName(SECOND_USER, host.port));
      strictEqual(first.received.length, 0);
      strictEqual(first.logins, 0);
      strictEqual(first.connections, 1);
      for (const secret of [wrong, SECOND_PASSWORD]) {
        ok(!carrier.logs().includes(secret), "no password in the log");
      }
    } finally {
      await carrier?.stop();
      await first.close();
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("failover: both logins succeed with each upstream's own password file", async () => {
  const pki = await makeTestPki();
  // The first takes the login, then refuses the account's mail (Gmail's daily limit).
  const first = await startSmarthost({
    pki,
    users: { [FIRST_USER]: FIRST_PASSWORD },
    behavior: { rejectMailFrom: { code: 550, message: "5.4.5 Daily user sending limit exceeded" } },
  });
  const host = await second(pki);
  const dir = await Deno.makeTempDir({ prefix: "carrier-failover-pw-" });
  await Deno.writeTextFile(`${dir}/first`, FIRST_PASSWORD);
  await Deno.writeTextFile(`${dir}/second`, SECOND_PASSWORD);
  const carrier = await carrierFor(pki, first.port, host.port, {
    env: {},
    extra: [
      "--upstream-password-file",
      `${dir}/first`,
      "--upstream-password-file",
      `${dir}/second`,
    ],
  });
  try {
    const id = await sendMail(carrier.port, ["bob@example.net"]);
    await host.waitFor(1, 20_000);
    strictEqual(first.logins, 1, "the first upstream's password is the first file's");
    strictEqual(host.logins, 1, "the second upstream's password is the second file's");
    strictEqual(first.received.length, 0);
    const refused = await unavailable(carrier, upstreamName(FIRST_USER, first.port));
    match(refused, /5\.4\.5/);
    await deliveredVia(carrier, id, "bob@example.net", upstreamName(SECOND_USER, host.port));
  } finally {
    await carrier.stop();
    await first.close();
    await host.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("failover: first upstream's certificate is not trusted: the second delivers", async () => {
  const pki = await makeTestPki();
  // Signed by another CA than the one --upstream-ca names.
  const untrusted = await startSmarthost({
    pki: await makeTestPki({ fresh: true }),
    users: { [FIRST_USER]: FIRST_PASSWORD },
  });
  const host = await second(pki);
  const carrier = await carrierFor(pki, untrusted.port, host.port);
  try {
    const id = await sendMail(carrier.port, ["bob@example.net"]);
    await host.waitFor(1, 20_000);
    const refused = await unavailable(carrier, upstreamName(FIRST_USER, untrusted.port));
    match(refused, new RegExp(`TLS with upstream 127\\.0\\.0\\.1:${untrusted.port} failed`));
    await deliveredVia(carrier, id, "bob@example.net", upstreamName(SECOND_USER, host.port));
    strictEqual(untrusted.received.length, 0);
    strictEqual(untrusted.logins, 0, "no credentials over an untrusted TLS session");
    ok(!untrusted.commands.includes("AUTH"), untrusted.commands.join(" "));
  } finally {
    await carrier.stop();
    await untrusted.close();
    await host.close();
  }
});

const THROTTLES: [string, SmarthostBehavior["rejectMailFrom"], RegExp][] = [
  ["454 4.7.0", { code: 454, message: "Too many login attempts" }, /454 4\.7\.0 Too many login/],
  ["421", { code: 421, message: "Too many connections, slow down" }, /421 4\.4\.2 Too many/],
];

for (const [label, reply, logged] of THROTTLES) {
  Deno.test(`failover: ${label} to MAIL FROM pauses the first upstream; the next message skips it`, async () => {
    const pki = await makeTestPki();
    const first = await startSmarthost({
      pki,
      users: { [FIRST_USER]: FIRST_PASSWORD },
      behavior: { rejectMailFrom: reply },
    });
    const host = await second(pki);
    // Long retries: the pause (retry-min for a first outage) outlasts the test.
    const carrier = await carrierFor(pki, first.port, host.port, {
      extra: ["--retry-min", "1h", "--retry-max", "2h"],
    });
    try {
      const id = await sendMail(carrier.port, ["bob@example.net"]);
      await host.waitFor(1, 20_000);
      const refused = await unavailable(carrier, upstreamName(FIRST_USER, first.port));
      match(refused, logged);
      match(refused, / pause=\d{4}s$/, "paused for about retry-min (1h)");
      await deliveredVia(carrier, id, "bob@example.net", upstreamName(SECOND_USER, host.port));
      strictEqual(first.received.length, 0);
      const seen = { connections: first.connections, commands: first.commands.length };

      const next = await sendMail(carrier.port, ["carol@example.net"], "second");
      const mails = await host.waitFor(2, 20_000);
      deepStrictEqual(mails[1].to, ["carol@example.net"]);
      await deliveredVia(carrier, next, "carol@example.net", upstreamName(SECOND_USER, host.port));
      deepStrictEqual(
        { connections: first.connections, commands: first.commands.length },
        seen,
        "the paused first upstream was not touched",
      );
      strictEqual(logLines(carrier, /upstream unavailable/).length, 1, carrier.logs());
    } finally {
      await carrier.stop();
      await first.close();
      await host.close();
    }
  });
}

Deno.test("failover: a 5xx to one recipient stays its answer: bounce, others via the first, none to the second", async () => {
  const pki = await makeTestPki();
  const first = await startSmarthost({
    pki,
    users: { [FIRST_USER]: FIRST_PASSWORD },
    behavior: { rejectRecipients: { "nobody@example.net": 550 } },
  });
  const host = await second(pki);
  const carrier = await carrierFor(pki, first.port, host.port);
  try {
    const to = ["ann@example.net", "nobody@example.net", "zed@example.net"];
    const id = await sendMail(carrier.port, to);
    const [original, bounce] = await first.waitFor(2, 20_000);
    deepStrictEqual(original.to, ["ann@example.net", "zed@example.net"]);
    strictEqual(bounce.from, "");
    deepStrictEqual(bounce.to, [SENDER]);
    const report = new TextDecoder("latin1").decode(bounce.data);
    match(report, /Final-Recipient: rfc822;\s*nobody@example\.net/i);
    match(report, /Status: 5\.1\.1/);
    match(report, /Remote-MTA: dns;\s*127\.0\.0\.1/i);
    const failed = await carrier.waitForLog(
      new RegExp(`failed id=${id} to=<nobody@example\\.net>`),
    );
    ok(failed.includes(` upstream=${upstreamName(FIRST_USER, first.port)} `), failed);
    await carrier.waitForLog(new RegExp(`bounce queued id=\\S+ for=${id} to=<${SENDER}>`));
    await carrier.waitForLog(new RegExp(`removed id=${id} delivered=2 failed=1`));
    await waitUntil("empty queue", async () => (await queueFiles(carrier.spool)).length === 0);
    strictEqual(host.connections, 0, "nothing reached the second upstream");
    ok(!carrier.logs().includes("upstream unavailable"), carrier.logs());
  } finally {
    await carrier.stop();
    await first.close();
    await host.close();
  }
});
