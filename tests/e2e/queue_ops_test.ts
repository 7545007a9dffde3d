/**
 * The operator's queue commands against a running server, through the real CLI: summary,
 * hold and release (one id and --all), requeue, and list saying why mail waits.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { python, runCarrier, startCarrier } from "../support/carrier.ts";
import { startSmarthost, upstreamArgs } from "../support/smarthost.ts";
import { makeTestPki } from "../support/tls.ts";

const USER = "relay@example.com";
const PASSWORD = "queue-ops-password";

/** Queues one message per recipient list with smtplib; prints the queue ids. */
async function send(port: number, batches: string[][]): Promise<string[]> {
  const out = await python(
    `
import json, smtplib, sys
ids = []
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.ehlo("ops.test")
    for rcpts in json.loads(sys.argv[2]):
        s.mail("app@example.org")
        for r in rcpts: s.rcpt(r)
        code, resp = s.data(b"Subject: ops\\r\\n\\r\\nbody\\r\\n")
        ids.append(resp.decode().split()[-1])
print(" ".join(ids))
`,
    [String(port), JSON.stringify(batches)],
  );
  strictEqual(out.code, 0, out.stderr);
  return out.stdout.trim().split(" ");
}

const queue = (spool: string, ...args: string[]) =>
  runCarrier(["queue", ...args, "--spool", spool]);

Deno.test("queue summary, hold --all, release, requeue with a live server", async () => {
  const pki = await makeTestPki();
  const host = await startSmarthost({
    pki,
    users: { [USER]: PASSWORD },
    behavior: { rejectRecipients: { "busy@example.net": 450, "slow@gmail.com": 451 } },
  });
  // Retries an hour apart: nothing is tried again by itself during the test.
  const carrier = await startCarrier({
    args: upstreamArgs(pki, host.port, USER).map((a) => a === "1s" ? "1h" : a === "2s" ? "2h" : a),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
  });
  try {
    const [a, b] = await send(carrier.port, [["busy@example.net"], [
      "busy@example.net",
      "slow@gmail.com",
    ]]);
    await carrier.waitForLog(new RegExp(`deferred id=${b}`));
    await carrier.waitForLog(new RegExp(`deferred id=${a}`));

    const summary = await queue(carrier.spool, "summary");
    strictEqual(summary.code, 0, summary.stderr);
    const lines = summary.stdout.trim().split("\n");
    deepStrictEqual(lines.slice(0, 2), [
      "2 messages, 3 recipients pending",
      "by state:  due 0  deferred 2  held 0  paused 0",
    ]);
    ok(lines.includes("       2  example.net"), summary.stdout);
    ok(lines.includes("       1  gmail.com"), summary.stdout);
    ok(lines.some((l) => /^ +[12] {2}45[01] 4\.\d\.\d /.test(l)), summary.stdout);
    const json = JSON.parse((await queue(carrier.spool, "summary", "--json")).stdout);
    deepStrictEqual(json.byState, { due: 0, deferred: 2, held: 0, paused: 0 });

    const held = await queue(carrier.spool, "hold", "--all");
    strictEqual(held.code, 0, held.stderr);
    deepStrictEqual(held.stdout.trim().split("\n").sort(), [`held ${a}`, `held ${b}`].sort());
    match(
      (await queue(carrier.spool, "list")).stdout,
      new RegExp(`next held \\(carrier queue release ${a}\\)`),
    );
    const heldJson = JSON.parse((await queue(carrier.spool, "summary", "--json")).stdout);
    strictEqual(heldJson.byState.held, 2);

    const released = await queue(carrier.spool, "release", a);
    strictEqual(released.stdout.trim(), `released ${a}`);
    match((await queue(carrier.spool, "list")).stdout, new RegExp(`${a} .* next in \\S+\\n`));

    host.setBehavior({ rejectRecipients: {} });
    const requeued = await queue(carrier.spool, "requeue", a);
    strictEqual(requeued.stdout.trim(), `requeued ${a}`);
    await carrier.waitForLog(new RegExp(`removed id=${a} delivered=1`), 15_000);
    const left = JSON.parse((await queue(carrier.spool, "list", "--json")).stdout);
    deepStrictEqual(left.messages.map((m: { id: string; held?: boolean }) => [m.id, m.held]), [[
      b,
      true,
    ]]);
    ok(carrier.logs().includes(`info held by operator id=${b}`), carrier.logs());

    const usage = await queue(carrier.spool, "hold");
    strictEqual(usage.code, 2);
    strictEqual(
      usage.stderr.trim(),
      "carrier: queue hold: give at least one message id (or --all)",
    );
  } finally {
    await carrier.stop();
    await host.close();
  }
});

Deno.test("queue list in hold mode says nothing will be sent", async () => {
  const carrier = await startCarrier();
  try {
    const [id] = await send(carrier.port, [["a@example.com"]]);
    const list = await queue(carrier.spool, "list");
    match(
      list.stdout,
      new RegExp(`${id} .* next never: hold mode \\(the server has no upstream\\)`),
    );
    const summary = await queue(carrier.spool, "summary");
    ok(
      summary.stdout.includes("server:    hold mode (no upstream): nothing is sent"),
      summary.stdout,
    );
  } finally {
    await carrier.stop();
  }
});
