/**
 * End-to-end open-relay tests: the real server as a subprocess, and Python's smtplib
 * from 127.0.0.2, outside the relay networks, with and without AUTH.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { python, startCarrier, swaks } from "../support/carrier.ts";
import {
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
    strictEqual(stored.record.client.address, "127.0.0.2");
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
