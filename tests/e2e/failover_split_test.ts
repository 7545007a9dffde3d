/**
 * End-to-end failover with many recipients and with every upstream down: transactions of at
 * most 100 recipients (or the upstream's LIMITS RCPTMAX), each recipient delivered exactly
 * once when the first upstream stops half-way, a plain 4xx staying on its upstream, and mail
 * kept in the queue until an upstream comes back and `carrier queue flush` sends it.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { type CarrierProcess, freePort, queueFiles, startCarrier } from "../support/carrier.ts";
import {
  rcptCounts,
  type Smarthost,
  type SmarthostOptions,
  startSmarthost,
  upstreamListArgs,
} from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";
import {
  deliveredOnce,
  FIRST_PASSWORD,
  FIRST_USER,
  logLines,
  queueCommand,
  recipients,
  SECOND_PASSWORD,
  SECOND_USER,
  sendMail,
  unavailable,
  upstreamName,
  waitUntil,
} from "./_failover_helpers.ts";

const ENV = {
  CARRIER_UPSTREAM_PASSWORD: FIRST_PASSWORD,
  CARRIER_UPSTREAM_PASSWORD_2: SECOND_PASSWORD,
};

interface Pair {
  pki: TestPki;
  first: Smarthost;
  second: Smarthost;
  carrier: CarrierProcess;
  stop(): Promise<void>;
}

/** Two smarthosts (the first as `first` says) and Carrier relaying to them in that order. */
async function pair(first: Partial<SmarthostOptions>, extra: string[] = []): Promise<Pair> {
  const pki = await makeTestPki();
  const one = await startSmarthost({ pki, users: { [FIRST_USER]: FIRST_PASSWORD }, ...first });
  const two = await startSmarthost({ pki, users: { [SECOND_USER]: SECOND_PASSWORD } });
  const list = [{ port: one.port, user: FIRST_USER }, { port: two.port, user: SECOND_USER }];
  const carrier = await startCarrier({
    // The inbound limit is 100 recipients per message by default.
    args: upstreamListArgs(pki, list, ["--max-recipients", "1000", ...extra]),
    env: ENV,
  });
  return {
    pki,
    first: one,
    second: two,
    carrier,
    async stop() {
      await carrier.stop();
      await one.close();
      await two.close();
    },
  };
}

const counts = (host: Smarthost) => host.received.map((m) => m.to.length);

Deno.test("failover: 250 recipients go in transactions of 100, 100 and 50, each once", async () => {
  const p = await pair({});
  try {
    const to = recipients(250);
    const id = await sendMail(p.carrier.port, to);
    await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=250 failed=0`), 30_000);
    deepStrictEqual(counts(p.first), [100, 100, 50]);
    deepStrictEqual(rcptCounts(p.first.commands), [100, 100, 50], "RCPT commands per MAIL");
    deliveredOnce(to, p.first.received);
    strictEqual(p.first.connections, 1, "one connection carries all three");
    strictEqual(p.second.connections, 0);
    deepStrictEqual(await queueFiles(p.carrier.spool), []);
  } finally {
    await p.stop();
  }
});

Deno.test("failover: an upstream advertising LIMITS RCPTMAX=40 gets at most 40 per transaction", async () => {
  const p = await pair({ limits: "RCPTMAX=40 MAILMAX=1000" });
  try {
    const to = recipients(250);
    const id = await sendMail(p.carrier.port, to);
    await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=250 failed=0`), 30_000);
    deepStrictEqual(counts(p.first), [40, 40, 40, 40, 40, 40, 10]);
    deepStrictEqual(rcptCounts(p.first.commands), [40, 40, 40, 40, 40, 40, 10]);
    deliveredOnce(to, p.first.received);
    strictEqual(p.second.connections, 0);
  } finally {
    await p.stop();
  }
});

Deno.test("failover: the first takes 100, then throttles (421): the other 150 go to the second, each once", async () => {
  const p = await pair({
    behavior: {
      failAfter: 1,
      rejectMailFrom: { code: 421, message: "Too many messages, slow down" },
    },
  });
  try {
    const to = recipients(250);
    const id = await sendMail(p.carrier.port, to);
    await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=250 failed=0`), 30_000);
    deepStrictEqual(counts(p.first), [100]);
    deepStrictEqual(counts(p.second), [100, 50]);
    deliveredOnce(to, p.first.received, p.second.received);
    const line = await unavailable(p.carrier, upstreamName(FIRST_USER, p.first.port));
    match(line, /421 4\.4\.2 Too many messages/);
    const second = upstreamName(SECOND_USER, p.second.port);
    strictEqual(logLines(p.carrier, new RegExp(`delivered id=${id} .* upstream=`)).length, 250);
    strictEqual(
      logLines(p.carrier, new RegExp(`delivered id=${id} .* upstream=${second} `)).length,
      150,
    );
    ok(!p.carrier.logs().includes("deferred"), p.carrier.logs());
  } finally {
    await p.stop();
  }
});

Deno.test("failover: the first drops the connection in its second DATA: the rest go to the second at once, each once", async () => {
  const p = await pair({ behavior: { failAfter: 1, dropMidData: 1 } });
  try {
    const to = recipients(250);
    // 200 KiB: the drop comes before the final dot (after it, a resend is inherent to SMTP).
    const id = await sendMail(p.carrier.port, to, "dropped", 200);
    // A lost connection is the upstream's failure: the rest go to the next one in this attempt.
    await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=250 failed=0`), 30_000);
    ok(!p.carrier.logs().includes("deferred"), p.carrier.logs());
    deliveredOnce(to, p.first.received, p.second.received);
    deepStrictEqual(p.first.received.map((m) => m.to.length), [100]);
    deepStrictEqual(p.second.received.map((m) => m.to.length), [100, 50]);
    // One lost connection does not pause the first upstream.
    strictEqual(logLines(p.carrier, /upstream unavailable/).length, 0, p.carrier.logs());
    const sent = [...p.first.received, ...p.second.received].map((m) => m.to.length);
    ok(sent.every((n) => n <= 100), sent.join(" "));
  } finally {
    await p.stop();
  }
});

Deno.test("failover: a plain 451 to MAIL FROM moves the message to the second without pausing the first", async () => {
  const p = await pair({ behavior: { tempFailAll: true } });
  try {
    const id = await sendMail(p.carrier.port, ["bob@example.net"]);
    await p.second.waitFor(1, 20_000);
    await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=1 failed=0`));
    const next = await sendMail(p.carrier.port, ["carol@example.net"], "second");
    await p.second.waitFor(2, 20_000);
    await p.carrier.waitForLog(new RegExp(`removed id=${next} delivered=1 failed=0`));
    ok(p.first.commands.filter((c) => c === "MAIL").length >= 2, "the first is tried again");
    strictEqual(logLines(p.carrier, /upstream unavailable/).length, 0, p.carrier.logs());
    strictEqual(p.first.received.length, 0);
    // The third in a row pauses it: the fourth message does not try it.
    const third = await sendMail(p.carrier.port, ["dan@example.net"], "third");
    await p.carrier.waitForLog(new RegExp(`removed id=${third} delivered=1 failed=0`));
    strictEqual(logLines(p.carrier, /upstream unavailable/).length, 1, p.carrier.logs());
    const mails = p.first.commands.filter((c) => c === "MAIL").length;
    const fourth = await sendMail(p.carrier.port, ["eve@example.net"], "fourth");
    await p.carrier.waitForLog(new RegExp(`removed id=${fourth} delivered=1 failed=0`));
    strictEqual(p.first.commands.filter((c) => c === "MAIL").length, mails);
  } finally {
    await p.stop();
  }
});

Deno.test("failover: a 450 to one recipient stays on the first (retried there), nothing to the second", async () => {
  const p = await pair({ behavior: { rejectRecipients: { "busy@example.net": 450 } } });
  try {
    const to = ["ann@example.net", "busy@example.net"];
    const id = await sendMail(p.carrier.port, to);
    await p.carrier.waitForLog(new RegExp(`deferred id=${id} rcpts=1 `));
    deepStrictEqual(p.first.received.map((m) => m.to), [["ann@example.net"]]);
    p.first.setBehavior({ rejectRecipients: {} });
    await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=2 failed=0`), 20_000);
    deliveredOnce(to, p.first.received);
    strictEqual(p.second.connections, 0);
  } finally {
    await p.stop();
  }
});

Deno.test("failover: a rate reply to one RCPT is that mailbox's: no pause, no failover", async () => {
  const rate = "The user you are trying to contact is receiving mail at a rate that prevents " +
    "additional messages from being delivered";
  const p = await pair({
    behavior: { rejectRecipients: { "busy@example.net": { code: 450, message: rate } } },
  });
  try {
    const to = ["ann@example.net", "busy@example.net"];
    const id = await sendMail(p.carrier.port, to);
    await p.carrier.waitForLog(new RegExp(`deferred id=${id} rcpts=1 `));
    deepStrictEqual(p.first.received.map((m) => m.to), [["ann@example.net"]]);
    strictEqual(p.second.connections, 0);
    ok(!p.carrier.logs().includes("upstream unavailable"), p.carrier.logs());
    // The next message still goes through the first upstream.
    const next = await sendMail(p.carrier.port, ["cat@example.net"]);
    await p.carrier.waitForLog(new RegExp(`removed id=${next} delivered=1`));
    deepStrictEqual(p.first.received.map((m) => m.to), [["ann@example.net"], ["cat@example.net"]]);
    strictEqual(p.second.connections, 0);
  } finally {
    await p.stop();
  }
});

Deno.test("failover: all upstreams down: the message waits in the queue; after the second is up and a flush, delivered", async () => {
  const pki = await makeTestPki();
  const [firstPort, secondPort] = [freePort(), freePort()];
  const list = [{ port: firstPort, user: FIRST_USER }, { port: secondPort, user: SECOND_USER }];
  // Retries an hour apart: only the flush sends it again.
  const carrier = await startCarrier({
    args: upstreamListArgs(pki, list, ["--retry-min", "1h", "--retry-max", "2h"]),
    env: ENV,
  });
  let host: Smarthost | undefined;
  try {
    const id = await sendMail(carrier.port, ["bob@example.net"]);
    await unavailable(carrier, upstreamName(FIRST_USER, firstPort));
    await unavailable(carrier, upstreamName(SECOND_USER, secondPort));
    const deferred = await carrier.waitForLog(new RegExp(`deferred id=${id} rcpts=1 `));
    match(deferred, new RegExp(`cannot connect to upstream 127\\.0\\.0\\.1:${secondPort}`));
    // Both paused: the server tells `queue summary` (until the first one may be tried again).
    await waitUntil("the server state says the upstreams are paused", async () => {
      const out = await queueCommand(carrier, "summary");
      return out.stdout.includes("server:    upstream paused until ");
    });
    const listed = await queueCommand(carrier, "list");
    strictEqual(listed.code, 0, listed.stderr);
    // Its own retry (1h, with jitter) or the pause's end, whichever is later.
    match(
      listed.stdout,
      new RegExp(`^${id} .* attempts 1 {2}next (in|after the upstream pause, in) \\d+[hm]`, "m"),
    );
    match(listed.stdout, /^ {4}pending {3}<bob@example\.net>/m);
    match(listed.stdout, /^1 message$/m);
    ok((await queueFiles(carrier.spool)).length > 0, "still on disk");

    host = await startSmarthost({
      pki,
      users: { [SECOND_USER]: SECOND_PASSWORD },
      port: secondPort,
    });
    const flushed = await queueCommand(carrier, "flush");
    strictEqual(flushed.code, 0, flushed.stderr);
    match(flushed.stdout, /^flush requested: 1 message will be tried/);
    const [mail] = await host.waitFor(1, 20_000);
    deepStrictEqual(mail.to, ["bob@example.net"]);
    strictEqual(mail.user, SECOND_USER);
    const line = await carrier.waitForLog(new RegExp(`delivered id=${id} to=<bob@example\\.net>`));
    ok(line.includes(` upstream=${upstreamName(SECOND_USER, secondPort)} `), line);
    await carrier.waitForLog(new RegExp(`removed id=${id} delivered=1 failed=0`));
    strictEqual((await queueCommand(carrier, "list")).stdout.trim(), "queue is empty");
  } finally {
    await carrier.stop();
    await host?.close();
  }
});

// A message not held in memory (over 128 KiB when just queued, over 16 KiB once read back) is
// streamed from its file once per transaction: recipients past 100, or the next upstream after
// a refusal at MAIL FROM, get the whole message in the same attempt.
Deno.test({
  name:
    "failover: a 200 KiB message refused (454) at MAIL FROM by the first goes to the second at once",
  fn: async () => {
    const p = await pair(
      { behavior: { rejectMailFrom: { code: 454, message: "Too many login attempts" } } },
      ["--retry-min", "1h", "--retry-max", "2h"],
    );
    try {
      const id = await sendMail(p.carrier.port, ["bob@example.net"], "big", 200);
      await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=1 failed=0`), 20_000);
      deliveredOnce(["bob@example.net"], p.second.received);
    } finally {
      await p.stop();
    }
  },
});

Deno.test({
  name: "failover: a 200 KiB message to 250 recipients is delivered in one attempt",
  fn: async () => {
    const p = await pair({}, ["--retry-min", "1h", "--retry-max", "2h"]);
    try {
      const to = recipients(250);
      const id = await sendMail(p.carrier.port, to, "big", 200);
      await p.carrier.waitForLog(new RegExp(`removed id=${id} delivered=250 failed=0`), 20_000);
      deepStrictEqual(counts(p.first), [100, 100, 50]);
    } finally {
      await p.stop();
    }
  },
});
