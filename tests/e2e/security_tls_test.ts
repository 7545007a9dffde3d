/**
 * End-to-end TLS tests: the real server as a subprocess (narrow permissions) against
 * swaks, Python's smtplib/ssl and a raw client over loopback. STARTTLS and implicit TLS
 * verified against the test CA, and STARTTLS command injection (CVE-2011-0411).
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { python, queueFiles, startCarrier, swaks } from "../support/carrier.ts";
import { ReplyReader, writeAll } from "../support/reply_reader.ts";
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

const encoder = new TextEncoder();

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
