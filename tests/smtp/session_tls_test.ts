/**
 * The Session and STARTTLS (RFC 3207): the reply, refusals, and starting over under TLS.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { reply } from "../../src/smtp/reply.ts";
import { b64, dataEnvelope, expectReply, ok2xx, send, session } from "./_helpers.ts";

Deno.test("Session: STARTTLS, then the session starts over under TLS", () => {
  const s = session({ starttls: true });
  ok2xx(s, "EHLO c");
  const step = send(s, "STARTTLS");
  deepStrictEqual(step, {
    replies: [reply(220, "2.0.0", "Ready to start TLS")],
    effect: { kind: "starttls" },
  });
  s.tlsStarted();
  strictEqual(s.state, "connected");
  strictEqual(s.client.tls, true);
  expectReply(send(s, "MAIL FROM:<a@b.c>"), 503, "5.5.1", /EHLO first/);
  const ehlo = send(s, "EHLO c");
  ok(!ehlo.replies[0].lines.includes("STARTTLS"));
  expectReply(send(s, "STARTTLS"), 502, "5.5.1");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  strictEqual(envelope.protocol, "ESMTPS");
  strictEqual(envelope.client.tls, true);
});

Deno.test("Session: STARTTLS refusals", () => {
  expectReply(send(session(), "STARTTLS"), 502, "5.5.1", /not available/);
  expectReply(send(session({ starttls: true }, { tls: true }), "STARTTLS"), 502, "5.5.1");
  const s = session({ starttls: true });
  ok2xx(s, "EHLO c");
  expectReply(send(s, "STARTTLS now"), 501, "5.5.4");
  ok2xx(s, "MAIL FROM:<a@b.c>");
  const step = send(s, "STARTTLS");
  expectReply(step, 503, "5.5.1", /transaction/);
  strictEqual(step.effect, undefined);
});

Deno.test("Session: tlsStarted forgets the EHLO name, the transaction and the user", () => {
  const s = session({ starttls: true, auth: true, authOnPlaintext: true });
  ok2xx(s, "EHLO before");
  send(s, "AUTH PLAIN " + b64("\0u\0p"));
  s.authFinished("ok");
  strictEqual(s.user, "u");
  s.tlsStarted();
  strictEqual(s.user, undefined);
  ok2xx(s, "EHLO after", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.helo, envelope.user, envelope.protocol], [
    "after",
    undefined,
    "ESMTPS",
  ]);
});
