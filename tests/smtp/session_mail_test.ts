/**
 * The Session: MAIL FROM and RCPT TO syntax and parameters (SIZE, BODY, SMTPUTF8, AUTH=).
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { dataEnvelope, expectReply, ok2xx, send, session } from "./_helpers.ts";

Deno.test("Session: MAIL and RCPT syntax errors are 501", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  expectReply(send(s, "MAIL <a@b.c>"), 501, "5.5.4", /MAIL FROM:<address>/);
  expectReply(send(s, "MAIL FROM <a@b.c>"), 501, "5.5.4");
  expectReply(send(s, "MAIL FROM:a@b.c"), 501, "5.1.3", /angle brackets/);
  expectReply(send(s, "MAIL FROM:<a@b.c"), 501, "5.1.3", /closing/);
  expectReply(send(s, "MAIL FROM:<a@b.c>SIZE=1"), 501, "5.1.3", /space/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=x"), 501, "5.5.4", /SIZE=<number>/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE"), 501, "5.5.4", /SIZE=<number>/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=1 SIZE=1"), 501, "5.5.4", /duplicate SIZE/);
  expectReply(send(s, "MAIL FROM:<a@b.c> BAD_KW"), 501, "5.1.3", /bad parameter/);
  ok2xx(s, "MAIL FROM: <a@b.c>");
  expectReply(send(s, "RCPT <d@e.f>"), 501, "5.5.4", /RCPT TO:<address>/);
  expectReply(send(s, "RCPT TO:<>"), 501, "5.1.3", /null/);
  expectReply(send(s, "RCPT TO:<a..b@x>"), 501, "5.1.3", /empty atom/);
  expectReply(send(s, `RCPT TO:<${"l".repeat(65)}@x.com>`), 553, "5.1.7", /too long/);
  strictEqual(s.state, "mail");
});

Deno.test("Session: MAIL parameters: unknown 555, SIZE 552, BODY", () => {
  const s = session({ maxMessageSize: 1000 });
  ok2xx(s, "EHLO c");
  expectReply(send(s, "MAIL FROM:<a@b.c> X-FOO=1"), 555, "5.5.4", /Unsupported parameter X-FOO/);
  expectReply(send(s, "MAIL FROM:<a@b.c> RET=SOME"), 501, "5.5.4", /RET=FULL/);
  expectReply(
    send(s, "MAIL FROM:<a@b.c> SIZE=1001"),
    552,
    "5.3.4",
    /exceeds fixed maximum message size/,
  );
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=99999999999999999999"), 552, "5.3.4");
  expectReply(send(s, "MAIL FROM:<a@b.c> BODY=BINARYMIME"), 555, "5.5.4", /BODY/);
  expectReply(send(s, "MAIL FROM:<a@b.c> BODY"), 555, "5.5.4", /BODY/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SMTPUTF8=yes"), 555, "5.5.4", /SMTPUTF8/);
  expectReply(send(s, "MAIL FROM:<a@b.c> AUTH=<>"), 555, "5.5.4", /AUTH/);
  strictEqual(s.state, "greeted");
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=1000 BODY=7BIT"), 250, "2.1.0");
  ok2xx(s, "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.declaredSize, envelope.body], [1000, "7BIT"]);
});

Deno.test("Session: MAIL AUTH= is accepted where AUTH is offered", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c> AUTH=<>");
});

Deno.test("Session: SMTPUTF8 allows UTF-8 addresses; without it they are 553", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  expectReply(send(s, "MAIL FROM:<jörg@example.com>"), 553, "5.1.7", /SMTPUTF8/);
  ok2xx(s, "MAIL FROM:<a@b.c>");
  expectReply(send(s, "RCPT TO:<jörg@bücher.example>"), 553, "5.1.7", /SMTPUTF8/);
  ok2xx(s, "RSET", "MAIL FROM:<jörg@example.com> SMTPUTF8", "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>");
  const envelope = dataEnvelope(send(s, "DATA"));
  strictEqual(envelope.smtputf8, true);
  strictEqual(envelope.sender, "jörg@example.com");
  deepStrictEqual(envelope.recipients, ["δοκιμή@παράδειγμα.δοκιμή"]);
});

Deno.test("Session: RCPT parameters other than NOTIFY and ORCPT are 555; they need EHLO", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  expectReply(send(s, "RCPT TO:<d@e.f> X-FOO=1"), 555, "5.5.4", /X-FOO/);
  strictEqual(s.state, "mail");
  const h = session();
  ok2xx(h, "HELO c", "MAIL FROM:<a@b.c>");
  expectReply(send(h, "RCPT TO:<d@e.f> NOTIFY=NEVER"), 555, "5.5.4", /EHLO/);
});

Deno.test("Session: DSN parameters (RFC 3461) reach the envelope, decoded", () => {
  const s = session();
  ok2xx(
    s,
    "EHLO c",
    "MAIL FROM:<a@b.c> RET=hdrs ENVID=QQ+2B1",
    "RCPT TO:<d@e.f> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;D+40e.f",
    "RCPT TO:<g@h.i> notify=never",
    "RCPT TO:<j@k.l>",
  );
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual(envelope.dsn, { ret: "HDRS", envid: "QQ+1" });
  deepStrictEqual(envelope.recipientDsn, [
    { notify: ["SUCCESS", "DELAY"], orcpt: { type: "rfc822", address: "D@e.f" } },
    { notify: ["NEVER"] },
    {},
  ]);
});

Deno.test("Session: bad DSN values are 501 5.5.4 and change nothing", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  for (
    const bad of [
      "MAIL FROM:<a@b.c> RET=ALL",
      "MAIL FROM:<a@b.c> RET",
      "MAIL FROM:<a@b.c> ENVID=a+2",
      "MAIL FROM:<a@b.c> ENVID=a+2b",
      `MAIL FROM:<a@b.c> ENVID=${"x".repeat(101)}`,
      "MAIL FROM:<a@b.c> RET=FULL RET=HDRS",
    ]
  ) expectReply(send(s, bad), 501, "5.5.4");
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<a@b.c>");
  for (
    const bad of [
      "RCPT TO:<d@e.f> NOTIFY=NEVER,SUCCESS",
      "RCPT TO:<d@e.f> NOTIFY=SUCCESS,SUCCESS",
      "RCPT TO:<d@e.f> NOTIFY=SOMETIMES",
      "RCPT TO:<d@e.f> NOTIFY",
      "RCPT TO:<d@e.f> ORCPT=d@e.f",
      "RCPT TO:<d@e.f> ORCPT=rfc822;",
      "RCPT TO:<d@e.f> ORCPT=rfc822;a+zz",
      "RCPT TO:<d@e.f> NOTIFY=NEVER NOTIFY=NEVER",
    ]
  ) expectReply(send(s, bad), 501, "5.5.4");
  strictEqual(s.state, "mail");
});
