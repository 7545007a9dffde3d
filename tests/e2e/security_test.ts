/**
 * End-to-end security tests: the real server as a subprocess (narrow permissions)
 * against real clients (swaks, Python's smtplib/ssl, a raw byte client) over
 * loopback. TLS (STARTTLS and implicit), STARTTLS command injection, AUTH and its
 * brute-force throttle, open-relay attempts, secrets in logs, permission and
 * configuration errors, rate limits and a connection flood.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { runArguments } from "../../src/permissions.ts";
import {
  type CarrierProcess,
  python,
  queueFiles,
  runCarrier,
  startCarrier,
  swaks,
} from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import { startSmarthost } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";

const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

const ALICE_PASSWORD = "hunter2-Alice-9f3k";

interface Stored {
  id: string;
  text: string;
  record: Record<string, unknown>;
}

async function storedMessages(spool: string): Promise<Stored[]> {
  const out: Stored[] = [];
  for (const name of await queueFiles(spool)) {
    if (!name.endsWith(".json")) continue;
    const id = name.slice(0, -5);
    out.push({
      id,
      text: latin1.decode(await Deno.readFile(join(spool, "queue", `${id}.msg`))),
      record: JSON.parse(await Deno.readTextFile(join(spool, "queue", name))),
    });
  }
  return out;
}

/** The one stored message whose Subject: is `subject`. */
async function storedBySubject(spool: string, subject: string): Promise<Stored> {
  const found = (await storedMessages(spool)).filter((m) =>
    m.text.includes(`\r\nSubject: ${subject}\r\n`)
  );
  strictEqual(found.length, 1, `one message with Subject: ${subject}`);
  return found[0];
}

/** The "with" keyword of our Received: header (RFC 3848). */
function receivedWith(text: string): string | undefined {
  ok(text.startsWith("Received: from "), text.slice(0, 60));
  return /^Received: [^;]*?\r\n\tby carrier\.test \(Carrier\) with (\S+) id /.exec(text)?.[1];
}

function tlsArgs(pki: TestPki): string[] {
  return ["--tls-cert", pki.certPath, "--tls-key", pki.keyPath];
}

/** Runs `carrier users add NAME --users FILE` with the password on stdin. */
async function addUser(file: string, name: string, password: string) {
  return await runCarrier(["users", "add", name, "--users", file], { stdin: `${password}\n` });
}

let sharedUsers: Promise<string> | undefined;

/** A users file with alice (ALICE_PASSWORD), made once per test process. */
function usersFile(): Promise<string> {
  return sharedUsers ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "carrier-users-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
    const file = join(dir, "users");
    const result = await addUser(file, "alice", ALICE_PASSWORD);
    strictEqual(result.code, 0, result.stderr);
    return file;
  })();
}

/** swaks arguments for one message with a distinct subject. */
function message(subject: string, to = "ops@example.com"): string[] {
  return ["--from", "app@example.org", "--to", to, "--header", `Subject: ${subject}`];
}

function authArgs(mechanism: "PLAIN" | "LOGIN", user: string, password: string): string[] {
  return ["--auth", mechanism, "--auth-user", user, "--auth-password", password];
}

/** Waits (bounded) until `pattern` occurs `count` times in the logs. */
async function waitForCount(
  carrier: CarrierProcess,
  pattern: RegExp,
  count: number,
  timeoutMs = 15_000,
): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((carrier.logs().match(global) ?? []).length >= count) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`fewer than ${count} log lines matching ${pattern}:\n${carrier.logs()}`);
}

/**
 * Reads SMTP replies from any Deno.Conn (plain or TLS). A read that times out stays
 * pending and is reused, so no bytes are lost; `close()` settles it.
 */
class ReplyReader {
  #text = "";
  #pending: Promise<number | null> | undefined;
  #buffer = new Uint8Array(16 * 1024);
  #decoder = new TextDecoder();

  constructor(readonly conn: Deno.Conn) {}

  /** Text received and not yet parsed into replies. */
  get unparsed(): string {
    return this.#text;
  }

  /** True when no read is in flight (required before Deno.startTls on the connection). */
  get idle(): boolean {
    return this.#pending === undefined;
  }

  /** Reads one chunk: "data", "eof" or "timeout" (the read stays pending). */
  async #fill(ms: number): Promise<"data" | "eof" | "timeout"> {
    this.#pending ??= this.conn.read(this.#buffer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      this.#pending.then((n) => n, () => null),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), Math.max(0, ms))),
    ]);
    clearTimeout(timer);
    if (result === "timeout") return "timeout";
    this.#pending = undefined;
    if (result === null) return "eof";
    this.#text += this.#decoder.decode(this.#buffer.subarray(0, result), { stream: true });
    return "data";
  }

  /** The next complete reply (code and raw text). */
  async reply(timeoutMs = 10_000): Promise<{ code: number; raw: string }> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.#text);
      if (m) {
        this.#text = this.#text.slice(m[0].length);
        return { code: Number(m[1]), raw: m[0] };
      }
      const outcome = await this.#fill(deadline - Date.now());
      if (outcome !== "data") {
        throw new Error(`no complete reply (${outcome}); got ${JSON.stringify(this.#text)}`);
      }
    }
  }

  /** True when nothing at all arrives within `ms`. */
  async quiet(ms: number): Promise<boolean> {
    if (this.#text !== "") return false;
    return await this.#fill(ms) === "timeout";
  }

  /** True when the peer closes the connection within `ms` (bytes before the end are kept). */
  async closed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const outcome = await this.#fill(deadline - Date.now());
      if (outcome === "eof") return true;
      if (outcome === "timeout") return false;
    }
    return false;
  }

  close(): void {
    this.#pending?.catch(() => {});
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

Deno.test("TLS: STARTTLS and implicit TLS with swaks and smtplib, verified against the test CA; Received: says ESMTPS/ESMTPSA", async () => {
  const pki = await makeTestPki();
  const users = await usersFile();
  const carrier = await startCarrier({
    args: [...tlsArgs(pki), "--listen-tls", "127.0.0.1:0", "--users", users],
  });
  try {
    ok(carrier.tlsPort, "a TLS port");
    const verify = ["--tls-verify", "--tls-ca-path", pki.caCertPath];
    // Verification is real: without our CA swaks refuses the certificate.
    const unverified = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--tls",
      "--tls-verify",
      ...message("never"),
    ]);
    ok(unverified.code !== 0, unverified.output);

    const starttls = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--tls",
      ...verify,
      ...message("swaks-starttls"),
    ]);
    strictEqual(starttls.code, 0, starttls.output);
    // Offered in plaintext; not offered (nor AUTH missing) in the EHLO after the handshake.
    ok(/^<- {2}250[- ]STARTTLS$/m.test(starttls.output), starttls.output);
    ok(!/^<~ {2}250[- ]STARTTLS$/m.test(starttls.output), starttls.output);
    ok(/^<~ {2}250[- ]AUTH PLAIN LOGIN$/m.test(starttls.output), starttls.output);
    ok(!/^<- {2}250[- ]AUTH/m.test(starttls.output), starttls.output);

    const implicit = await swaks([
      "--server",
      `127.0.0.1:${carrier.tlsPort}`,
      "--tlsc",
      ...verify,
      ...authArgs("PLAIN", "alice", ALICE_PASSWORD),
      ...message("swaks-implicit"),
    ]);
    strictEqual(implicit.code, 0, implicit.output);
    ok(!/^<~ {2}250[- ]STARTTLS$/m.test(implicit.output), implicit.output);
    ok(/^<~ {2}235 2\.7\.0/m.test(implicit.output), implicit.output);

    const py = await python(
      `
import json, smtplib, ssl, sys
port, tls_port, ca, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
out = {}
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.ehlo("py.test")
    out["plain"] = [s.has_extn("starttls"), s.has_extn("auth")]
    s.starttls(context=ctx)
    out["starttls_version"] = s.sock.version()
    s.ehlo("py.test")
    out["after"] = [s.has_extn("starttls"), s.has_extn("auth")]
    s.sendmail("py@example.org", ["ops@example.com"], b"Subject: py-starttls\\r\\n\\r\\nhello\\r\\n")
with smtplib.SMTP_SSL("127.0.0.1", tls_port, context=ctx, timeout=30) as s:
    s.ehlo("py.test")
    out["implicit"] = [s.has_extn("starttls"), s.has_extn("auth")]
    out["implicit_version"] = s.sock.version()
    s.login(user, password)
    s.sendmail("py@example.org", ["ops@example.com"], b"Subject: py-implicit\\r\\n\\r\\nhello\\r\\n")
print(json.dumps(out))
`,
      [String(carrier.port), String(carrier.tlsPort), pki.caCertPath, "alice", ALICE_PASSWORD],
    );
    strictEqual(py.code, 0, py.stderr);
    const seen = JSON.parse(py.stdout);
    deepStrictEqual(seen.plain, [true, false]);
    deepStrictEqual(seen.after, [false, true]);
    deepStrictEqual(seen.implicit, [false, true]);
    ok(/^TLSv1\.[23]$/.test(seen.starttls_version), seen.starttls_version);
    ok(/^TLSv1\.[23]$/.test(seen.implicit_version), seen.implicit_version);

    const expected: [string, string, string | undefined][] = [
      ["swaks-starttls", "ESMTPS", undefined],
      ["swaks-implicit", "ESMTPSA", "alice"],
      ["py-starttls", "ESMTPS", undefined],
      ["py-implicit", "ESMTPSA", "alice"],
    ];
    for (const [subject, protocol, user] of expected) {
      const stored = await storedBySubject(carrier.spool, subject);
      strictEqual(receivedWith(stored.text), protocol, subject);
      strictEqual(stored.record.protocol, protocol, subject);
      strictEqual(stored.record.user, user, subject);
    }
    strictEqual((await storedMessages(carrier.spool)).length, 4);
    ok(/ starttls conn=\S+ client=127\.0\.0\.1 protocol=TLSv1\.[23]/.test(carrier.logs()));
  } finally {
    strictEqual(await carrier.stop(), 0);
  }
});

Deno.test("STARTTLS injection (CVE-2011-0411): plaintext pipelined after STARTTLS is discarded, never executed", async () => {
  const pki = await makeTestPki();
  const carrier = await startCarrier({ args: tlsArgs(pki) });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: carrier.port });
  let reader = new ReplyReader(conn);
  try {
    strictEqual((await reader.reply()).code, 220);
    const injected = "MAIL FROM:<evil@example.net>\r\n";
    await writeAll(conn, "EHLO x\r\nSTARTTLS\r\n" + injected);
    const ehlo = await reader.reply();
    strictEqual(ehlo.code, 250);
    ok(ehlo.raw.includes("STARTTLS"));
    const ready = await reader.reply();
    strictEqual(ready.code, 220, ready.raw);
    ok(ready.raw.includes("2.0.0"), ready.raw);
    // Nothing after the 220 in plaintext: no reply to the injected MAIL.
    strictEqual(reader.unparsed, "");
    ok(reader.idle);

    const tls = await Deno.startTls(conn, { hostname: "localhost", caCerts: [pki.caCert] });
    reader = new ReplyReader(tls);
    // Nor after the handshake: the server stays silent until we speak.
    ok(await reader.quiet(500), `unexpected bytes after the handshake: ${reader.unparsed}`);
    await writeAll(tls, "RCPT TO:<x@example.com>\r\n");
    const rcpt = await reader.reply();
    strictEqual(rcpt.code, 503, rcpt.raw);
    // The session was reset by TLS (RFC 3207 §4.2): EHLO again, and no STARTTLS offered now.
    await writeAll(tls, "EHLO x\r\nMAIL FROM:<ok@example.org>\r\nQUIT\r\n");
    const after = await reader.reply();
    strictEqual(after.code, 250);
    ok(!after.raw.includes("STARTTLS"), after.raw);
    strictEqual((await reader.reply()).code, 250);
    strictEqual((await reader.reply()).code, 221);
    ok(await reader.closed(5000));
    strictEqual(reader.unparsed, "");
    const line = await carrier.waitForLog(/ starttls conn=/);
    const discarded = Number(/ discarded=(\d+)/.exec(line)?.[1]);
    strictEqual(discarded, encoder.encode(injected).length, line);
    ok(!carrier.logs().includes("evil@example.net"));
    strictEqual((await queueFiles(carrier.spool)).length, 0);
  } finally {
    reader.close();
    await carrier.stop();
  }
});

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

Deno.test("AUTH: users add (0600, replace); not offered before TLS (538); PLAIN and LOGIN over TLS; wrong password 535", async () => {
  const pki = await makeTestPki();
  const dir = await Deno.makeTempDir({ prefix: "carrier-auth-" });
  const file = join(dir, "users");
  const first = await addUser(file, "alice", "first-pw");
  strictEqual(first.code, 0, first.stderr);
  strictEqual(first.stdout.trim(), `added user alice in ${file}`);
  strictEqual((await Deno.stat(file)).mode! & 0o777, 0o600);
  strictEqual((await addUser(file, "bob", "bob-pw")).code, 0);
  const before = await Deno.readTextFile(file);
  const replaced = await addUser(file, "alice", "second-pw");
  strictEqual(replaced.code, 0, replaced.stderr);
  strictEqual(replaced.stdout.trim(), `replaced user alice in ${file}`);
  const after = await Deno.readTextFile(file);
  deepStrictEqual(after.trim().split("\n").map((l) => l.split(":")[0]), ["alice", "bob"]);
  ok(before.split("\n")[0] !== after.split("\n")[0], "alice's hash changed");
  strictEqual(before.split("\n")[1], after.split("\n")[1], "bob kept");
  ok(!after.includes("second-pw") && !after.includes("first-pw"));
  strictEqual((await Deno.stat(file)).mode! & 0o777, 0o600);

  const carrier = await startCarrier({ args: [...tlsArgs(pki), "--users", file] });
  const client = await RawClient.connect(carrier.port);
  try {
    ok(carrier.logs().includes(`auth="2 users"`), carrier.logs());
    await client.reply();
    await client.send("EHLO plain.test\r\n");
    const ehlo = await client.reply();
    ok(ehlo.lines.includes("STARTTLS"));
    ok(!ehlo.lines.some((l) => l.startsWith("AUTH")), ehlo.raw);
    await client.send(`AUTH PLAIN ${btoa("\0alice\0second-pw")}\r\nAUTH LOGIN\r\n`);
    for (const refused of await client.replies(2)) {
      strictEqual(refused.code, 538, refused.raw);
      ok(refused.raw.includes("5.7.11"), refused.raw);
    }
    await client.send("QUIT\r\n");
    strictEqual((await client.reply()).code, 221);
    ok(!carrier.logs().includes("auth ok"));

    const server = ["--server", `127.0.0.1:${carrier.port}`, "--tls"];
    const plain = await swaks([
      ...server,
      ...authArgs("PLAIN", "alice", "second-pw"),
      ...message("auth-plain"),
    ]);
    strictEqual(plain.code, 0, plain.output);
    ok(/^<~ {2}235 2\.7\.0/m.test(plain.output), plain.output);
    const login = await swaks([
      ...server,
      ...authArgs("LOGIN", "bob", "bob-pw"),
      ...message("auth-login", "someone@elsewhere.example"),
    ]);
    strictEqual(login.code, 0, login.output);
    ok(/^<~ {2}235 2\.7\.0/m.test(login.output), login.output);
    for (const [subject, user] of [["auth-plain", "alice"], ["auth-login", "bob"]]) {
      const stored = await storedBySubject(carrier.spool, subject);
      strictEqual(receivedWith(stored.text), "ESMTPSA");
      strictEqual(stored.record.user, user);
    }

    const wrong = await swaks([
      ...server,
      ...authArgs("PLAIN", "alice", "first-pw"),
      ...message("auth-wrong"),
    ]);
    ok(wrong.code !== 0, wrong.output);
    ok(/^<~\* 535 5\.7\.8 /m.test(wrong.output), wrong.output);
    strictEqual((await storedMessages(carrier.spool)).length, 2);
    ok(/ auth ok conn=\S+ client=127\.0\.0\.1 user=alice/.test(carrier.logs()));
    ok(/ auth ok conn=\S+ client=127\.0\.0\.1 user=bob/.test(carrier.logs()));
    ok(/ auth failed conn=\S+ client=127\.0\.0\.1 user=alice outcome=failed/.test(carrier.logs()));
  } finally {
    client.close();
    await carrier.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Python smtplib from source address 127.0.0.2: EHLO, optional STARTTLS+login, MAIL, RCPT. */
const FROM_127_0_0_2 = `
import json, smtplib, ssl, sys
port, ca, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with smtplib.SMTP("127.0.0.1", port, source_address=("127.0.0.2", 0), timeout=30) as s:
    s.ehlo("far.test")
    if user:
        s.starttls(context=ssl.create_default_context(cafile=ca))
        s.ehlo("far.test")
        s.login(user, password)
    mail = s.mail("far@example.org")
    rcpt = s.rcpt("victim@example.com")
    print(json.dumps([mail[0], rcpt[0], rcpt[1].decode()]))
`;

Deno.test("open relay attempts: a client outside relay-networks gets 554 (no users) or 530 (users), unless it authenticates", async () => {
  const pki = await makeTestPki();
  const users = await usersFile();
  const relay = ["--relay-networks", "127.0.0.1/32"];
  const [closed, withAuth] = await Promise.all([
    startCarrier({ args: relay }),
    startCarrier({ args: [...relay, ...tlsArgs(pki), "--users", users] }),
  ]);
  try {
    // No users configured: 554 5.7.1 Relay access denied at RCPT.
    const denied = await python(FROM_127_0_0_2, [String(closed.port), "", "", ""]);
    strictEqual(denied.code, 0, denied.stderr);
    const [mail, rcpt, text] = JSON.parse(denied.stdout);
    strictEqual(mail, 250);
    strictEqual(rcpt, 554);
    ok(/^5\.7\.1 <victim@example\.com>: Relay access denied$/.test(text), text);
    const swaksDenied = await swaks([
      "--server",
      `127.0.0.1:${closed.port}`,
      "--local-interface",
      "127.0.0.2",
      ...message("relay-denied"),
    ]);
    ok(swaksDenied.code !== 0);
    ok(/^<\*\* 554 5\.7\.1 <ops@example\.com>: Relay access denied/m.test(swaksDenied.output));
    await closed.waitForLog(/ relay denied client=127\.0\.0\.2 /);
    // The same configuration accepts a client in the network.
    const local = await swaks(["--server", `127.0.0.1:${closed.port}`, ...message("relay-ok")]);
    strictEqual(local.code, 0, local.output);
    strictEqual((await storedMessages(closed.spool)).length, 1);

    // Users configured: 530 5.7.0 Authentication required...
    const required = await python(FROM_127_0_0_2, [String(withAuth.port), "", "", ""]);
    strictEqual(required.code, 0, required.stderr);
    const [mail2, rcpt2, text2] = JSON.parse(required.stdout);
    strictEqual(mail2, 250);
    strictEqual(rcpt2, 530);
    strictEqual(text2, "5.7.0 Authentication required");
    await withAuth.waitForLog(/ relay denied client=127\.0\.0\.2 /);
    // ...and after AUTH over TLS the same client may relay (smtplib and swaks).
    const authed = await python(FROM_127_0_0_2, [
      String(withAuth.port),
      pki.caCertPath,
      "alice",
      ALICE_PASSWORD,
    ]);
    strictEqual(authed.code, 0, authed.stderr);
    deepStrictEqual(JSON.parse(authed.stdout).slice(0, 2), [250, 250]);
    const swaksAuthed = await swaks([
      "--server",
      `127.0.0.1:${withAuth.port}`,
      "--local-interface",
      "127.0.0.2",
      "--tls",
      ...authArgs("PLAIN", "alice", ALICE_PASSWORD),
      ...message("relay-authed"),
    ]);
    strictEqual(swaksAuthed.code, 0, swaksAuthed.output);
    const stored = await storedBySubject(withAuth.spool, "relay-authed");
    strictEqual(receivedWith(stored.text), "ESMTPSA");
    strictEqual((stored.record.client as { address: string }).address, "127.0.0.2");
    // A client in the network needs no AUTH, users or not.
    const local2 = await swaks([
      "--server",
      `127.0.0.1:${withAuth.port}`,
      ...message("relay-local"),
    ]);
    strictEqual(local2.code, 0, local2.output);
    strictEqual(receivedWith((await storedBySubject(withAuth.spool, "relay-local")).text), "ESMTP");
  } finally {
    await Promise.all([closed.stop(), withAuth.stop()]);
  }
});

Deno.test("AUTH brute force: 535 with growing delays, 421 and close at the fifth failure; the address stays locked out", async () => {
  const users = await usersFile();
  const carrier = await startCarrier({
    args: ["--users", users, "--auth-on-plaintext-loopback"],
  });
  const clients: RawClient[] = [];
  try {
    const client = await RawClient.connect(carrier.port);
    clients.push(client);
    await client.reply();
    await client.send("EHLO guesser.test\r\n");
    ok((await client.reply()).lines.includes("AUTH PLAIN LOGIN"));
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const started = Date.now();
      await client.send(`AUTH PLAIN ${btoa(`\0alice\0guess-${attempt}`)}\r\n`);
      const failed = await client.reply(20_000);
      delays.push(Date.now() - started);
      strictEqual(failed.code, 535, failed.raw);
      ok(failed.raw.includes("5.7.8"), failed.raw);
    }
    // 1 s, 2 s, 4 s, 8 s (with some slack for scheduling).
    [1000, 2000, 4000, 8000].forEach((expected, i) =>
      ok(delays[i] >= expected - 100 && delays[i] < expected + 3000, `delays ${delays}`)
    );
    const started = Date.now();
    await client.send(`AUTH PLAIN ${btoa("\0alice\0guess-5")}\r\n`);
    const locked = await client.reply(20_000);
    strictEqual(locked.code, 421, locked.raw);
    ok(locked.raw.includes("4.7.0"), locked.raw);
    ok(Date.now() - started < 3000, "the failure that locks out is answered at once");
    ok(await client.closedByPeer(5000));

    // A new connection from the same address: refused at AUTH even with the right password.
    const again = await RawClient.connect(carrier.port);
    clients.push(again);
    strictEqual((await again.reply()).code, 220);
    await again.send(`EHLO guesser.test\r\nAUTH PLAIN ${btoa(`\0alice\0${ALICE_PASSWORD}`)}\r\n`);
    strictEqual((await again.reply()).code, 250);
    const refused = await again.reply(5000);
    strictEqual(refused.code, 421, refused.raw);
    ok(await again.closedByPeer(5000));
    ok(
      / auth failed conn=\S+ client=127\.0\.0\.1 user=alice outcome=throttled/.test(carrier.logs()),
    );
    ok(!carrier.logs().includes(" auth ok "));

    // Another address is not locked out.
    const other = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--local-interface",
      "127.0.0.2",
      ...authArgs("PLAIN", "alice", ALICE_PASSWORD),
      ...message("other-address"),
    ]);
    strictEqual(other.code, 0, other.output);
    ok(/ auth ok conn=\S+ client=127\.0\.0\.2 user=alice/.test(carrier.logs()));
  } finally {
    for (const c of clients) c.close();
    await carrier.stop();
  }
});

Deno.test("no secret in any log line: AUTH passwords (right, wrong, malformed) and the upstream password", async () => {
  const pki = await makeTestPki();
  const users = await usersFile();
  const upstreamPassword = "Upstream-S3cret-q8z";
  const wrongPassword = "Wrong-Guess-77x";
  const env = { CARRIER_UPSTREAM_PASSWORD: upstreamPassword };
  // A real upstream that receives the password (over STARTTLS) and refuses it with 535.
  const smarthost = await startSmarthost({ pki, users: { u: "not-the-one-carrier-has" } });
  const upstream = [
    "--upstream",
    `starttls://u@127.0.0.1:${smarthost.port}`,
    "--upstream-ca",
    pki.caCertPath,
    "--upstream-servername",
    "localhost",
  ];
  const carrier = await startCarrier({
    args: [...tlsArgs(pki), "--users", users, "--auth-on-plaintext-loopback", ...upstream],
    env,
  }).catch(async (e) => {
    await smarthost.close();
    throw e;
  });
  let stopped = false;
  const client = await RawClient.connect(carrier.port);
  try {
    const server = ["--server", `127.0.0.1:${carrier.port}`, "--tls"];
    for (const mechanism of ["PLAIN", "LOGIN"] as const) {
      const sent = await swaks([
        ...server,
        ...authArgs(mechanism, "alice", ALICE_PASSWORD),
        ...message(`secret-${mechanism}`),
      ]);
      strictEqual(sent.code, 0, sent.output);
    }
    await client.reply();
    await client.send("EHLO x.test\r\n");
    await client.reply();
    // Malformed (no leading authzid field), then wrong, then LOGIN with the password as user name.
    await client.send(`AUTH PLAIN ${btoa(`alice\0${ALICE_PASSWORD}`)}\r\n`);
    strictEqual((await client.reply()).code, 501);
    await client.send(`AUTH PLAIN ${btoa(`\0alice\0${wrongPassword}`)}\r\n`);
    strictEqual((await client.reply()).code, 535);
    await client.send("QUIT\r\n");
    strictEqual((await client.reply()).code, 221);
    // Tried upstream and refused at AUTH (535): deferred, not bounced; the queue then pauses.
    await waitForCount(carrier, / deferred id=\S+ rcpts=1 attempts=1 .*535/, 1);
    await waitForCount(carrier, / error upstream unavailable .*535/, 1);
    strictEqual(smarthost.received.length, 0);
    strictEqual(await carrier.stop(), 0);
    stopped = true;
    const checked = await runCarrier(["check-config", "--spool", carrier.spool, ...upstream], {
      env,
    });
    strictEqual(checked.code, 0, checked.stderr);

    const logs = carrier.logs();
    ok(logs.includes(" auth ok ") && logs.includes(" auth failed "), logs);
    const outputs = { logs, checkConfig: checked.stdout + checked.stderr };
    for (
      const [secret, user] of [[ALICE_PASSWORD, "alice"], [wrongPassword, "alice"], [
        upstreamPassword,
        "u",
      ]]
    ) {
      const forms = [
        secret,
        btoa(secret),
        btoa(`\0${user}\0${secret}`),
        btoa(`${user}\0${secret}`),
        JSON.stringify(secret).slice(1, -1),
      ];
      for (const [where, text] of Object.entries(outputs)) {
        for (const form of forms) ok(!text.includes(form), `${where} contains ${form}`);
      }
    }
  } finally {
    client.close();
    if (!stopped) await carrier.stop();
    await smarthost.close();
  }
});

/** Runs `deno run ARGS` (Carrier from source with exactly the given flags); bounded. */
async function denoRun(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    env: { NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Asserts one line of stderr (no stack trace) starting with `prefix`; returns it. */
function oneLine(stderr: string, prefix: string): string {
  const lines = stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, stderr);
  ok(lines[0].startsWith(prefix), stderr);
  ok(!/\n\s+at /.test(stderr), stderr);
  return lines[0];
}

Deno.test("permission and configuration errors: one line, the flag or key named, no stack trace", async () => {
  const spool = await Deno.makeTempDir({ prefix: "carrier-perm-" });
  const serve = ["serve", "--spool", spool, "--listen", "127.0.0.1:0"];
  const full = await runArguments(serve, () => undefined);
  ok(
    full.some((a) => a.startsWith("--allow-write=")) &&
      full.some((a) => a.startsWith("--allow-net=")),
  );

  const noWrite = await denoRun(full.filter((a) => !a.startsWith("--allow-write")));
  ok(noWrite.code !== 0);
  ok(oneLine(noWrite.stderr, "carrier: permission missing:").includes("--allow-write"));

  const noNet = await denoRun(full.filter((a) => !a.startsWith("--allow-net")));
  ok(noNet.code !== 0);
  ok(oneLine(noNet.stderr, "carrier: permission missing:").includes("--allow-net"));

  const bogus = await runCarrier([...serve, "--bogus"]);
  strictEqual(bogus.code, 2);
  ok(oneLine(bogus.stderr, "carrier: ").includes("--bogus"));

  const notNumber = await runCarrier([...serve, "--max-recipients", "abc"]);
  strictEqual(notNumber.code, 2);
  ok(oneLine(notNumber.stderr, "carrier: ").includes("--max-recipients"));

  // A config file read with the permission to read it (as `check-config` prints).
  const dir = await Deno.makeTempDir({ prefix: "carrier-config-" });
  const main = full[full.length - serve.length - 1];
  ok(main.endsWith("/src/main.ts"), main);
  for (
    const [name, json, key] of [
      ["unknown.json", { listen: "127.0.0.1:0", bogusKey: 1 }, "bogusKey"],
      ["type.json", { listen: "127.0.0.1:0", maxRecipients: "ten" }, "maxRecipients"],
    ] as const
  ) {
    const file = join(dir, name);
    await Deno.writeTextFile(file, JSON.stringify(json));
    const result = await denoRun([
      "--no-prompt",
      `--allow-read=${file}`,
      "--allow-env",
      "--allow-sys=hostname",
      main,
      "serve",
      "--config",
      file,
    ]);
    strictEqual(result.code, 2, result.stderr);
    ok(oneLine(result.stderr, "carrier: ").includes(`"${key}"`), result.stderr);
  }
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(spool, { recursive: true });
});

Deno.test("rate limits: the third MAIL in a minute and the fourth RCPT in an hour get 450 4.7.1", async () => {
  const carrier = await startCarrier({
    args: ["--rate-messages-per-minute", "2", "--rate-recipients-per-hour", "3"],
  });
  const clients: RawClient[] = [];
  try {
    const first = await RawClient.connect(carrier.port);
    clients.push(first);
    await first.reply();
    await first.send(
      "EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.com>\r\n" +
        "RCPT TO:<r2@example.com>\r\nRCPT TO:<r3@example.com>\r\nRCPT TO:<r4@example.com>\r\n" +
        "RSET\r\nMAIL FROM:<a@example.org>\r\nRSET\r\n",
    );
    const replies = await first.replies(9);
    deepStrictEqual(replies.map((r) => r.code), [250, 250, 250, 250, 250, 450, 250, 250, 250]);
    ok(replies[5].raw.startsWith("450 4.7.1 "), replies[5].raw);
    // The limits are per client address, not per connection.
    const second = await RawClient.connect(carrier.port);
    clients.push(second);
    await second.reply();
    await second.send("EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nNOOP\r\n");
    const [, mail, noop] = await second.replies(3);
    strictEqual(mail.code, 450, mail.raw);
    ok(mail.raw.startsWith("450 4.7.1 "), mail.raw);
    strictEqual(noop.code, 250);
    ok(carrier.logs().includes("rate limited: recipients"));
    ok(carrier.logs().includes("rate limited: messages"));
  } finally {
    for (const c of clients) c.close();
    await carrier.stop();
  }
});

Deno.test("connection flood: 300 connections at once, those over --max-connections get 421 4.7.0 and are closed; then a normal message", async () => {
  const carrier = await startCarrier({
    args: ["--max-connections", "50", "--max-connections-per-client", "50"],
  });
  const readers: ReplyReader[] = [];
  try {
    const conns = await Promise.all(
      Array.from(
        { length: 300 },
        () => Deno.connect({ hostname: "127.0.0.1", port: carrier.port }),
      ),
    );
    readers.push(...conns.map((c) => new ReplyReader(c)));
    const first = await Promise.all(readers.map((r) => r.reply(20_000)));
    const accepted = readers.filter((_, i) => first[i].code === 220);
    const refused = readers.filter((_, i) => first[i].code === 421);
    strictEqual(accepted.length, 50);
    strictEqual(refused.length, 250);
    for (const [i, r] of first.entries()) {
      if (r.code === 421) ok(r.raw.startsWith("421 4.7.0 "), `${i}: ${r.raw}`);
    }
    const closed = await Promise.all(refused.map((r) => r.closed(10_000)));
    strictEqual(closed.filter((c) => c).length, 250);
    // The accepted sessions still work.
    await writeAll(accepted[0].conn, "NOOP\r\n");
    strictEqual((await accepted[0].reply()).code, 250);
    await waitForCount(carrier, / connection refused: too many connections /, 250);
    for (const r of readers) r.close();
    await waitForCount(carrier, / disconnect conn=/, 50);
    const result = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      ...message("after-flood"),
    ]);
    strictEqual(result.code, 0, result.output);
    strictEqual((await storedMessages(carrier.spool)).length, 1);
  } finally {
    for (const r of readers) r.close();
    strictEqual(await carrier.stop(), 0);
  }
});
