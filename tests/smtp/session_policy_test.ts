/**
 * The Session and its SessionPolicy: consulted at MAIL and RCPT, refusals passed through.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { reply } from "../../src/smtp/reply.ts";
import {
  b64,
  dataEnvelope,
  expectReply,
  ok2xx,
  refusingPolicy,
  send,
  session,
} from "./_helpers.ts";

Deno.test("Session: the policy is consulted at MAIL and RCPT; its replies pass through", () => {
  const { policy, calls } = refusingPolicy();
  const s = session({ policy, auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "MAIL FROM:<x@banned.example>"), {
    replies: [reply(550, "5.7.1", "Sender refused")],
  });
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<ok@x.example>");
  deepStrictEqual(send(s, "RCPT TO:<no@refused.example>"), {
    replies: [reply(554, "5.7.1", "Relay access denied")],
  });
  strictEqual(s.errors, 2);
  ok2xx(s, "RCPT TO:<ok2@x.example>");
  deepStrictEqual(dataEnvelope(send(s, "DATA")).recipients, ["ok@x.example", "ok2@x.example"]);
  deepStrictEqual(calls.map((c) => [c.kind, ...c.args]), [
    ["mail", "x@banned.example"],
    ["mail", "a@b.c"],
    ["rcpt", "ok@x.example", "a@b.c"],
    ["rcpt", "no@refused.example", "a@b.c"],
    ["rcpt", "ok2@x.example", "a@b.c"],
  ]);
  deepStrictEqual(calls[0].ctx, {
    client: { address: "192.0.2.7", port: 40000, tls: true },
    user: undefined,
  });
});

Deno.test("Session: the policy sees the authenticated user", () => {
  const { policy, calls } = refusingPolicy();
  const s = session({ policy, auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  send(s, "AUTH PLAIN " + b64("\0alice\0pw"));
  s.authFinished("ok");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  deepStrictEqual(calls.map((c) => c.ctx.user), ["alice", "alice"]);
});

Deno.test("Session: a refused RCPT leaves a transaction with no recipient at 554 on DATA", () => {
  const { policy } = refusingPolicy();
  const s = session({ policy });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  expectReply(send(s, "RCPT TO:<a@refused.example>"), 554, "5.7.1");
  expectReply(send(s, "DATA"), 554, "5.5.1");
});
