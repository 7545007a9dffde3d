/**
 * End-to-end AUTH tests: the real server as a subprocess against swaks over loopback.
 * users add, AUTH PLAIN and LOGIN over TLS only, and the brute-force throttle.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { startCarrier, swaks } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import {
  addUser,
  ALICE_PASSWORD,
  authArgs,
  message,
  receivedWith,
  storedBySubject,
  storedMessages,
  tlsArgs,
  usersFile,
} from "../support/security.ts";
import { makeTestPki } from "../support/tls.ts";

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
