/**
 * End-to-end relay: clients -> real Carrier subprocess -> real smarthost
 * (npm smtp-server with STARTTLS and AUTH, test CA). Covers exact bytes and
 * envelope, bounces, retries, dropped connections, the queue command, and
 * SIGKILL during accept and during delivery.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  type CarrierProcess,
  freePort,
  python,
  queueFiles,
  runCarrier,
  startCarrier,
  swaks,
} from "../support/carrier.ts";
import { sendRaw, waitUntil } from "../support/mail_client.ts";
import { type Smarthost, startSmarthost, upstreamArgs } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";

const USER = "relay@example.com";
const PASSWORD = "app-password-s3cret";

async function relayPair(
  opts: { password?: string; carrierArgs?: string[]; spool?: string; smarthost?: Smarthost } = {},
): Promise<{ pki: TestPki; smarthost: Smarthost; carrier: CarrierProcess }> {
  const pki = await makeTestPki();
  const smarthost = opts.smarthost ?? await startSmarthost({ pki, users: { [USER]: PASSWORD } });
  const carrier = await startCarrier({
    args: upstreamArgs(pki, smarthost.port, USER, opts.carrierArgs),
    env: { CARRIER_UPSTREAM_PASSWORD: opts.password ?? PASSWORD },
    spool: opts.spool,
  });
  return { pki, smarthost, carrier };
}

const latin1 = new TextDecoder("latin1");

/**
 * The message expires and bounces; the bounce cannot pass the same (failing) upstream,
 * waits out its own lifetime and is dropped with a log line; the queue ends empty.
 */
async function expectExpiredAndBounceDropped(carrier: CarrierProcess, id: string): Promise<void> {
  await carrier.waitForLog(new RegExp(`expired id=${id} rcpts=1`), 20_000);
  await carrier.waitForLog(new RegExp(`bounce queued id=\\S+ for=${id} to=<app@example.org>`));
  await carrier.waitForLog(
    /no bounce for a null sender: dropping failed recipients id=\S+ rcpts=1 kind=bounce/,
    20_000,
  );
  await waitUntil("empty queue", async () => (await queueFiles(carrier.spool)).length === 0);
}

Deno.test("relay: swaks -> Carrier -> STARTTLS+AUTH smarthost, bytes and envelope exact", async () => {
  const { smarthost, carrier } = await relayPair();
  try {
    const body =
      "Subject: relayed\r\nX-Test: 1\r\n\r\n.dot line\r\n8bit: caf\u00e9 \u2603\r\nlast\r\n";
    const dataFile = await Deno.makeTempFile({ suffix: ".eml" });
    await Deno.writeTextFile(dataFile, body);
    const result = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--ehlo",
      "client.test",
      "--from",
      "app@example.org",
      "--to",
      "one@example.com,two@example.net",
      "--data",
      `@${dataFile}`,
    ]);
    strictEqual(result.code, 0, result.output);
    const id = /queued as ([0-9A-Z]+)/.exec(result.output)![1];
    const [mail] = await smarthost.waitFor(1, 20_000);
    strictEqual(mail.from, "app@example.org");
    deepStrictEqual(mail.to, ["one@example.com", "two@example.net"]);
    strictEqual(mail.user, USER);
    ok(mail.secure, "delivered over TLS");
    const text = new TextDecoder().decode(mail.data);
    ok(
      text.startsWith(
        "Received: from client.test ([127.0.0.1])\r\n\tby carrier.test (Carrier) with ESMTP id " +
          id + "; ",
      ),
      text,
    );
    // Delivery adds the missing Message-ID and Date right after Received:, nothing else;
    // swaks ends the data with a CRLF of its own before the final dot.
    const rest = text.slice(text.search(/\r\n(?![\t ])/) + 2);
    const added = `Message-ID: <${id}@carrier.test>\r\nDate: `;
    ok(rest.startsWith(added), rest);
    const dateEnd = rest.indexOf("\r\n", added.length);
    const date = rest.slice(added.length, dateEnd);
    ok(/^\w{3}, \d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/.test(date), date);
    strictEqual(rest.slice(dateEnd + 2), body + "\r\n");
    await carrier.waitForLog(new RegExp(`removed id=${id} delivered=2 failed=0`));
    deepStrictEqual(await queueFiles(carrier.spool), []);
    ok(!carrier.logs().includes(PASSWORD), "password never logged");
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});

Deno.test("relay: a 5xx recipient bounces to the sender (RFC 3464), the other is delivered", async () => {
  const pki = await makeTestPki();
  const smarthost = await startSmarthost({
    pki,
    users: { [USER]: PASSWORD },
    behavior: { rejectRecipients: { "nobody@example.com": 550 } },
  });
  const { carrier } = await relayPair({ smarthost });
  try {
    const id = await sendRaw(
      carrier.port,
      "app@example.org",
      ["ok@example.com", "nobody@example.com"],
      "Subject: hello\r\n\r\nhi\r\n",
    );
    const [original, bounce] = await smarthost.waitFor(2, 20_000);
    deepStrictEqual(original.to, ["ok@example.com"]);
    strictEqual(bounce.from, "");
    deepStrictEqual(bounce.to, ["app@example.org"]);
    const dsn = latin1.decode(bounce.data);
    ok(/Content-Type: multipart\/report; report-type=delivery-status/i.test(dsn), dsn);
    ok(dsn.includes("Final-Recipient: rfc822; nobody@example.com"), dsn);
    ok(/Status: 5\.\d\.\d/.test(dsn), dsn);
    ok(dsn.includes("Subject: hello"), "original headers included");
    ok(dsn.includes(id));
    await carrier.waitForLog(new RegExp(`removed id=${id} delivered=1 failed=1`));
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});

Deno.test("relay: a wrong upstream password (535) defers, never bounces at once; at expiry the sender is told", async () => {
  const { smarthost, carrier } = await relayPair({
    password: "wrong-password",
    carrierArgs: ["--max-queue-lifetime", "4s"],
  });
  try {
    const id = await sendRaw(
      carrier.port,
      "app@example.org",
      ["a@example.com"],
      "Subject: x\r\n\r\nx\r\n",
    );
    await carrier.waitForLog(/error upstream unavailable .*535/);
    await carrier.waitForLog(new RegExp(`deferred id=${id} rcpts=1 attempts=1 .*535`));
    const list = await runCarrier(["queue", "list", "--spool", carrier.spool]);
    ok(list.stdout.includes(id) && /last error: .*535/.test(list.stdout), list.stdout);
    ok(!carrier.logs().includes(`failed id=${id}`), "not failed before the queue lifetime");
    await expectExpiredAndBounceDropped(carrier, id);
    strictEqual(smarthost.received.length, 0);
    ok(!carrier.logs().includes("wrong-password"), "password never logged");
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});

Deno.test("relay: upstream down at first, then up: delivered after a retry; queue list shows the deferral", async () => {
  const pki = await makeTestPki();
  // Reserve a port, then free it: nothing listens there until the smarthost starts.
  const port = freePort();
  const carrier = await startCarrier({
    args: upstreamArgs(pki, port, USER, ["--retry-min", "1s", "--retry-max", "1s"]),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
  });
  let smarthost: Smarthost | undefined;
  try {
    const id = await sendRaw(
      carrier.port,
      "app@example.org",
      ["a@example.com"],
      "Subject: later\r\n\r\nx\r\n",
    );
    await carrier.waitForLog(new RegExp(`deferred id=${id} rcpts=1 attempts=1`));
    const list = await runCarrier(["queue", "list", "--spool", carrier.spool]);
    strictEqual(list.code, 0, list.stderr);
    ok(
      list.stdout.includes(id) && list.stdout.includes("pending") &&
        list.stdout.includes("attempts 1"),
      list.stdout,
    );
    ok(/last error: .*(ECONNREFUSED|refused|connect)/i.test(list.stdout), list.stdout);
    const json = JSON.parse(
      (await runCarrier(["queue", "list", "--json", "--spool", carrier.spool])).stdout,
    );
    strictEqual(json.messages[0].id, id);
    strictEqual(json.messages[0].recipients[0].status, "pending");
    smarthost = await startSmarthost({ pki, users: { [USER]: PASSWORD }, port });
    const [mail] = await smarthost.waitFor(1, 20_000);
    deepStrictEqual(mail.to, ["a@example.com"]);
    await waitUntil("empty queue", async () => (await queueFiles(carrier.spool)).length === 0);
  } finally {
    await carrier.stop();
    await smarthost?.close();
  }
});

Deno.test("relay: connection dropped mid-DATA and a 4xx recipient: retried, nothing lost, no recipient twice", async () => {
  const pki = await makeTestPki();
  const smarthost = await startSmarthost({
    pki,
    users: { [USER]: PASSWORD },
    behavior: { dropMidData: 1, rejectRecipients: { "busy@example.com": 450 } },
  });
  const { carrier } = await relayPair({ smarthost });
  try {
    const body = "Subject: big\r\n\r\n" + "0123456789abcdef".repeat(64).concat("\r\n").repeat(200);
    const id = await sendRaw(
      carrier.port,
      "app@example.org",
      ["a@example.com", "busy@example.com"],
      body,
    );
    await carrier.waitForLog(new RegExp(`deferred id=${id} rcpts=2 attempts=1`));
    const [first] = await smarthost.waitFor(1, 20_000);
    deepStrictEqual(first.to, ["a@example.com"]);
    ok(latin1.decode(first.data).endsWith(body), "complete message after the retry");
    smarthost.setBehavior({ rejectRecipients: {} });
    const [, second] = await smarthost.waitFor(2, 20_000);
    deepStrictEqual(second.to, ["busy@example.com"]);
    await carrier.waitForLog(new RegExp(`removed id=${id} delivered=2 failed=0`));
    strictEqual(smarthost.received.length, 2);
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});

Deno.test("queue show, flush and delete on a held message; unknown ids are clear errors", async () => {
  const carrier = await startCarrier(); // hold mode: no upstream
  try {
    await carrier.waitForLog(/hold mode/);
    const id = await sendRaw(
      carrier.port,
      "app@example.org",
      ["a@example.com"],
      "Subject: held\r\n\r\nbody\r\n",
    );
    const show = await runCarrier(["queue", "show", id, "--spool", carrier.spool]);
    strictEqual(show.code, 0, show.stderr);
    ok(
      show.stdout.includes(`id:          ${id}`) && show.stdout.includes("Subject: held"),
      show.stdout,
    );
    const shown = JSON.parse(
      (await runCarrier(["queue", "show", id, "--json", "--spool", carrier.spool])).stdout,
    );
    strictEqual(shown.sender, "app@example.org");
    ok(shown.message.includes("Subject: held"));
    const flush = await runCarrier(["queue", "flush", "--spool", carrier.spool]);
    strictEqual(flush.code, 0);
    ok(flush.stdout.includes("1 message"), flush.stdout);
    const missing = await runCarrier(["queue", "show", "NOSUCHID1234", "--spool", carrier.spool]);
    strictEqual(missing.code, 1);
    strictEqual(missing.stderr.trim(), 'carrier: no message with id "NOSUCHID1234" in the queue');
    const traversal = await runCarrier([
      "queue",
      "delete",
      "../../etc/passwd",
      "--spool",
      carrier.spool,
    ]);
    strictEqual(traversal.code, 1);
    const del = await runCarrier(["queue", "delete", id, "--spool", carrier.spool]);
    strictEqual(del.code, 0, del.stderr);
    strictEqual(del.stdout.trim(), `deleted ${id}`);
    deepStrictEqual(await queueFiles(carrier.spool), []);
    strictEqual(
      (await runCarrier(["queue", "list", "--spool", carrier.spool])).stdout.trim(),
      "queue is empty",
    );
  } finally {
    await carrier.stop();
  }
});

Deno.test("SIGKILL while accepting and while delivering: every acknowledged message is delivered, per recipient", async () => {
  const pki = await makeTestPki();
  const spool = await Deno.makeTempDir({ prefix: "carrier-kill-" });
  // Phase 1: hold mode, clients sending when the server is killed.
  let carrier = await startCarrier({ spool });
  const sending = python(
    `
import smtplib, sys, time
acked = []
try:
    for n in range(400):
        with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
            code, resp = s.ehlo("k.test")
            s.mail("k@example.org"); s.rcpt("r1@example.com"); s.rcpt("r2@example.com")
            code, resp = s.data(("Subject: n%03d\\r\\n\\r\\nbody %d\\r\\n" % (n, n)).encode())
            if code == 250: acked.append("n%03d" % n)
except Exception as e:
    pass
print(" ".join(acked))
`,
    [String(carrier.port)],
  );
  await carrier.waitForLog(/queued .*id=/);
  await new Promise((r) => setTimeout(r, 300));
  await carrier.stop("SIGKILL");
  const acked = (await sending).stdout.trim().split(/\s+/).filter((s) => s !== "");
  ok(acked.length > 0, "some messages were acknowledged before the kill");
  // Phase 2: restart with a slow-ish upstream and kill again while delivering.
  const smarthost = await startSmarthost({ pki, users: { [USER]: PASSWORD } });
  carrier = await startCarrier({
    spool,
    args: upstreamArgs(pki, smarthost.port, USER, [
      "--delivery-concurrency",
      "2",
      "--messages-per-connection",
      "5",
    ]),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
  });
  try {
    await waitUntil("some deliveries", () => smarthost.received.length >= 3);
    await carrier.stop("SIGKILL");
    const midway = smarthost.received.length;
    carrier = await startCarrier({
      spool,
      args: upstreamArgs(pki, smarthost.port, USER),
      env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
    });
    await waitUntil("empty queue", async () => (await queueFiles(spool)).length === 0, 60_000);
    const delivered = new Map<string, number>();
    for (const mail of smarthost.received) {
      const subject = /Subject: (n\d{3})/.exec(latin1.decode(mail.data))?.[1] ?? "?";
      for (const rcpt of mail.to) {
        delivered.set(`${subject} ${rcpt}`, (delivered.get(`${subject} ${rcpt}`) ?? 0) + 1);
      }
    }
    for (const subject of acked) {
      for (const rcpt of ["r1@example.com", "r2@example.com"]) {
        ok((delivered.get(`${subject} ${rcpt}`) ?? 0) >= 1, `${subject} to ${rcpt} delivered`);
      }
    }
    // At-least-once: a duplicate is possible only for a message whose 250 came in just
    // before the kill; anything more would mean delivered recipients were re-sent.
    const duplicates = [...delivered.values()].filter((n) => n > 1).length;
    ok(
      duplicates <= 2 * 2,
      `at most the in-flight messages duplicated, got ${duplicates} (midway ${midway})`,
    );
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});

Deno.test("relay: a message that outlives --max-queue-lifetime bounces; its undeliverable bounce is dropped", async () => {
  const pki = await makeTestPki();
  const port = freePort(); // nothing listens: every attempt is deferred
  const carrier = await startCarrier({
    args: upstreamArgs(pki, port, USER, ["--max-queue-lifetime", "2s"]),
    env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD },
  });
  try {
    const id = await sendRaw(
      carrier.port,
      "app@example.org",
      ["a@example.com"],
      "Subject: old\r\n\r\nx\r\n",
    );
    await carrier.waitForLog(new RegExp(`deferred id=${id} `));
    await expectExpiredAndBounceDropped(carrier, id);
  } finally {
    await carrier.stop();
  }
});
