/**
 * The Session and AUTH PLAIN/LOGIN (RFC 4954): the exchanges, refusals, cancelling and outcomes.
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { reply } from "../../src/smtp/reply.ts";
import {
  b64,
  dataEnvelope,
  enc,
  expectReply,
  ok2xx,
  send,
  session,
  transcript,
} from "./_helpers.ts";

Deno.test("Session: AUTH PLAIN with an initial response, then ESMTPSA", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  const step = send(s, "AUTH PLAIN " + b64("\0alice\0s3cr3t pw"));
  deepStrictEqual(step, {
    replies: [],
    effect: { kind: "authenticate", user: "alice", password: "s3cr3t pw" },
  });
  strictEqual(s.state, "auth");
  deepStrictEqual(s.authFinished("ok"), {
    replies: [reply(235, "2.7.0", "Authentication successful")],
  });
  strictEqual(s.user, "alice");
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<alice@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.protocol, envelope.user], ["ESMTPSA", "alice"]);
  s.dataFinished({ kind: "stored", id: "x" });
  expectReply(send(s, "AUTH PLAIN " + b64("\0alice\0pw")), 503, "5.5.1", /Already/);
});

Deno.test("Session: AUTH PLAIN without an initial response; authzid", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "auth plain"), {
    replies: [{ code: 334, enhanced: undefined, lines: [""] }],
  });
  deepStrictEqual(send(s, b64("bob\0bob\0pw")).effect, {
    kind: "authenticate",
    user: "bob",
    password: "pw",
  });
  s.authFinished("failed");
  send(s, "AUTH PLAIN");
  expectReply(send(s, b64("eve\0bob\0pw")), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN " + b64("\0\0pw")), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN " + b64("bob\0pw")), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN ="), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN not-base64!"), 501, "5.5.2", /decode/);
  expectReply(send(s, "AUTH PLAIN " + btoa("\0u\0\xff")), 501, "5.5.2", /decode/);
  strictEqual(s.state, "greeted");
});

Deno.test("Session: AUTH LOGIN in two steps", () => {
  const s = session({ auth: true, authOnPlaintext: true });
  const start = transcript(s, ["C: EHLO c", "S: 250", "C: AUTH LOGIN", "S: 334 VXNlcm5hbWU6"]);
  strictEqual(start[1].effect, undefined);
  strictEqual(s.state, "auth");
  const steps = transcript(s, [
    `C: ${b64("carol")}`,
    "S: 334 UGFzc3dvcmQ6",
    `C: ${b64("pässword")}`,
  ]);
  strictEqual(steps[0].effect, undefined);
  deepStrictEqual(steps[1], {
    replies: [],
    effect: { kind: "authenticate", user: "carol", password: "pässword" },
  });
  expectReply(s.authFinished("ok"), 235, "2.7.0");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  strictEqual(dataEnvelope(send(s, "DATA")).protocol, "ESMTPA");
});

Deno.test("Session: AUTH LOGIN with the user name as initial response", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "AUTH LOGIN " + b64("dave")), {
    replies: [reply(334, undefined, "UGFzc3dvcmQ6")],
  });
  deepStrictEqual(send(s, "=").effect, { kind: "authenticate", user: "dave", password: "" });
  const s2 = session({ auth: true }, { tls: true });
  ok2xx(s2, "EHLO c", "AUTH LOGIN");
  expectReply(send(s2, "="), 501, "5.5.2", /Empty user/);
  strictEqual(s2.state, "greeted");
});

Deno.test("Session: AUTH without TLS where not allowed is 538 5.7.11", () => {
  const s = session({ auth: true, starttls: true });
  ok2xx(s, "EHLO c");
  const step = send(s, "AUTH PLAIN " + b64("\0u\0p"));
  expectReply(step, 538, "5.7.11", /Encryption required/);
  strictEqual(step.effect, undefined);
  strictEqual(s.state, "greeted");
});

Deno.test("Session: AUTH refusals before, outside and inside a transaction", () => {
  expectReply(send(session(), "AUTH PLAIN"), 502, "5.5.1", /AUTH not available/);
  const a = session({ auth: true }, { tls: true });
  expectReply(send(a, "AUTH PLAIN"), 503, "5.5.1", /EHLO first/);
  ok2xx(a, "HELO c");
  expectReply(send(a, "AUTH PLAIN"), 503, "5.5.1", /EHLO first/);
  ok2xx(a, "EHLO c");
  expectReply(send(a, "AUTH"), 501, "5.5.4");
  expectReply(send(a, "AUTH CRAM-MD5"), 504, "5.5.4", /mechanism/);
  expectReply(send(a, "AUTH PLAIN a b"), 501, "5.5.4");
  ok2xx(a, "MAIL FROM:<a@b.c>");
  expectReply(send(a, "AUTH PLAIN"), 503, "5.5.1", /transaction/);
  strictEqual(a.state, "mail");
});

Deno.test("Session: cancelling AUTH with * is 501", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "AUTH LOGIN");
  expectReply(send(s, "*"), 501, "5.0.0", /cancelled/);
  strictEqual(s.state, "greeted");
  ok2xx(s, "AUTH PLAIN");
  expectReply(send(s, "*"), 501, "5.0.0");
  ok2xx(s, "AUTH LOGIN", b64("u"));
  expectReply(send(s, "*"), 501, "5.0.0");
  strictEqual(s.user, undefined);
  throws(() => s.authFinished("ok"), /without a pending/);
});

Deno.test("Session: authFinished failed is 535 5.7.8, throttled 421 and close", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  send(s, "AUTH PLAIN " + b64("\0u\0wrong"));
  deepStrictEqual(s.authFinished("failed"), {
    replies: [reply(535, "5.7.8", "Authentication credentials invalid")],
  });
  strictEqual(s.user, undefined);
  strictEqual(s.state, "greeted");
  strictEqual(s.errors, 1);
  ok2xx(s, "MAIL FROM:<a@b.c>", "RSET");
  send(s, "AUTH PLAIN " + b64("\0u\0wrong"));
  const step = s.authFinished("throttled");
  expectReply(step, 421, "4.7.0");
  deepStrictEqual(step.effect, { kind: "close" });
  strictEqual(s.state, "closed");
  strictEqual(s.user, undefined);
});

Deno.test("Session: an overlong line during AUTH ends the exchange", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "AUTH LOGIN");
  s.receive({ bytes: enc("x".repeat(600)), complete: false, start: true });
  expectReply(s.receive({ bytes: enc("x"), complete: true, start: false }), 500, "5.5.6");
  strictEqual(s.state, "greeted");
  ok2xx(s, "NOOP");
});
