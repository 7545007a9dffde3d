/**
 * End-to-end DSN (RFC 3461): Python smtplib sends RET/ENVID/NOTIFY/ORCPT to a real Carrier
 * subprocess, which relays through smtp-server upstreams with and without DSN. Covers what
 * is passed on, the reports Carrier itself sends (relayed, failed with RET=FULL, delayed),
 * NOTIFY=NEVER, and one delay warning across a restart.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type CarrierProcess, python, queueFiles, startCarrier } from "../support/carrier.ts";
import { type Smarthost, startSmarthost, upstreamArgs } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";

const USER = "relay@example.com";
const PASSWORD = "dsn-app-password";
const SENDER = "alice@example.org";
const latin1 = new TextDecoder("latin1");

async function pair(
  smarthost: { dsn?: boolean; reject?: Record<string, number> },
  carrierArgs: string[] = [],
  spool?: string,
  pki?: TestPki,
): Promise<{ pki: TestPki; host: Smarthost; carrier: CarrierProcess }> {
  pki ??= await makeTestPki();
  const host = await startSmarthost({
    pki,
    users: { [USER]: PASSWORD },
    dsn: smarthost.dsn,
    behavior: { rejectRecipients: smarthost.reject ?? {} },
  });
  const carrier = await startCarrier({
    args: upstreamArgs(pki, host.port, USER, carrierArgs),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
    spool,
  });
  return { pki, host, carrier };
}

const MESSAGE = "From: alice@example.org\r\nSubject: dsn test\r\n\r\nline one\r\n.dot line\r\n";

/** Sends MESSAGE with smtplib and these MAIL/RCPT options; prints smtplib's refusals. */
async function send(
  port: number,
  recipients: string[],
  mailOptions: string[],
  rcptOptions: string[],
): Promise<void> {
  const out = await python(
    `
import json, smtplib, sys
port, rcpts, mopts, ropts, msg = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.ehlo("client.test")
    assert s.has_extn("dsn"), s.esmtp_features
    print(json.dumps(s.sendmail("${SENDER}", rcpts, msg.encode(), mopts, ropts)))
`,
    [
      String(port),
      JSON.stringify(recipients),
      JSON.stringify(mailOptions),
      JSON.stringify(rcptOptions),
      MESSAGE,
    ],
  );
  strictEqual(out.code, 0, out.stderr);
  strictEqual(out.stdout.trim(), "{}");
}

async function stopAll(carrier: CarrierProcess, host: Smarthost): Promise<void> {
  await carrier.stop();
  await host.close();
}

Deno.test("dsn: RET/ENVID/NOTIFY/ORCPT reach an upstream with DSN; Carrier sends no report itself", async () => {
  const { host, carrier } = await pair({ dsn: true });
  try {
    await send(carrier.port, ["bob@example.net"], ["RET=HDRS", "ENVID=env+2B42"], [
      "NOTIFY=SUCCESS,FAILURE",
      "ORCPT=rfc822;Bob+40Example.net",
    ]);
    const [mail] = await host.waitFor(1, 15_000);
    deepStrictEqual(mail.to, ["bob@example.net"]);
    deepStrictEqual(mail.dsn, {
      ret: "HDRS",
      // smtp-server decodes xtext: these are the values the client meant.
      envid: "env+42",
      recipients: [{ notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;Bob@Example.net" }],
    });
    ok(latin1.decode(mail.data).endsWith("\r\n\r\nline one\r\n.dot line\r\n"));
    await carrier.waitForLog(/ delivered .*bob@example\.net/);
    // The upstream took the DSN duty on: no relayed notice follows.
    await new Promise((r) => setTimeout(r, 500));
    strictEqual(host.received.length, 1);
    deepStrictEqual(await queueFiles(carrier.spool), []);
  } finally {
    await stopAll(carrier, host);
  }
});

Deno.test("dsn: NOTIFY=SUCCESS through an upstream without DSN gets a relayed notice", async () => {
  const { host, carrier } = await pair({ dsn: false });
  try {
    await send(carrier.port, ["bob@example.net", "carol@example.net"], ["ENVID=E1"], [
      "NOTIFY=SUCCESS",
    ]);
    const mails = await host.waitFor(2, 15_000);
    deepStrictEqual(mails[0].to, ["bob@example.net", "carol@example.net"]);
    strictEqual(mails[0].dsn, undefined);
    const notice = mails[1];
    strictEqual(notice.from, "");
    deepStrictEqual(notice.to, [SENDER]);
    const text = latin1.decode(notice.data);
    ok(text.includes("Subject: Successful Mail Relay Report\r\n"), text);
    ok(text.includes("Original-Envelope-Id: E1\r\n"), text);
    for (const r of ["bob@example.net", "carol@example.net"]) {
      ok(
        text.includes(`Final-Recipient: rfc822; ${r}\r\nAction: relayed\r\nStatus: 2.0.0\r\n`),
        text,
      );
    }
    ok(text.includes("Subject: dsn test"), "original headers attached");
    ok(!text.includes("line one"), "headers only");
    await carrier.waitForLog(/relayed notice queued/);
  } finally {
    await stopAll(carrier, host);
  }
});

Deno.test("dsn: RET=FULL returns the whole message; NOTIFY=NEVER suppresses the bounce", async () => {
  const reject = { "full@example.net": 550, "never@example.net": 550 };
  const { host, carrier } = await pair({ reject });
  try {
    await send(carrier.port, ["full@example.net"], ["RET=FULL"], []);
    const [bounce] = await host.waitFor(1, 15_000);
    deepStrictEqual(bounce.to, [SENDER]);
    const text = latin1.decode(bounce.data);
    ok(text.includes("Action: failed\r\nStatus: 5.1.1\r\n"), text);
    ok(text.includes("Content-Type: message/rfc822\r\n"), text);
    ok(text.includes(MESSAGE), "the whole message, byte-exact");

    await send(carrier.port, ["never@example.net"], [], ["NOTIFY=NEVER"]);
    await carrier.waitForLog(/ failed .*never@example\.net/);
    await new Promise((r) => setTimeout(r, 800));
    strictEqual(host.received.length, 1, "no bounce for NOTIFY=NEVER");
    deepStrictEqual(await queueFiles(carrier.spool), []);
  } finally {
    await stopAll(carrier, host);
  }
});

Deno.test("dsn: one delay warning after --delay-warning, not repeated by retries or a restart", async () => {
  const reject = { "busy@example.net": 450 };
  const args = ["--delay-warning", "1s"];
  let { pki, host, carrier } = await pair({ reject }, args);
  const spool = carrier.spool;
  try {
    await send(carrier.port, ["busy@example.net"], ["ENVID=W1"], []);
    const [warning] = await host.waitFor(1, 20_000);
    deepStrictEqual(warning.to, [SENDER]);
    const text = latin1.decode(warning.data);
    ok(text.includes("Subject: Delayed Mail (still being retried)\r\n"), text);
    ok(text.includes("Original-Envelope-Id: W1\r\n"), text);
    ok(/Action: delayed\r\nStatus: 4\.\d\.\d\r\n/.test(text), text);
    ok(/Will-Retry-Until: \w{3}, /.test(text), text);
    ok(text.includes("Remote-MTA: dns; 127.0.0.1\r\n"), "the upstream's host, not its URL or user");
    ok(!text.includes(USER), text);
    await carrier.waitForLog(/delay warning queued/);

    // More retries, then a restart on the same spool, then more retries: still one warning.
    await carrier.waitForLog(/deferred .*attempts=3/, 20_000);
    await carrier.stop();
    await host.close();
    ({ host, carrier } = await pair({ reject }, args, spool, pki));
    await carrier.waitForLog(/deferred .*attempts=[4-9]/, 20_000);
    strictEqual(host.received.length, 0, "no second warning");
  } finally {
    await stopAll(carrier, host);
  }
});
