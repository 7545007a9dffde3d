/**
 * The Session state machine: greeting, EHLO/HELO, the order of MAIL, RCPT and DATA,
 * a whole transaction and its envelope, RSET, QUIT and the other simple commands.
 */

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { reply } from "../../src/smtp/reply.ts";
import { dataEnvelope, enc, expectReply, ok2xx, send, session, transcript } from "./_helpers.ts";

Deno.test("Session: greeting is 220 without an enhanced code", () => {
  const s = session();
  deepStrictEqual(s.greeting(), {
    code: 220,
    enhanced: undefined,
    lines: ["mx.test ESMTP Carrier"],
  });
  strictEqual(s.state, "connected");
  strictEqual(s.errors, 0);
});

Deno.test("Session: EHLO advertises the extensions", () => {
  const s = session({ maxMessageSize: 12345 });
  const step = send(s, "EHLO client.example");
  deepStrictEqual(step, {
    replies: [{
      code: 250,
      lines: [
        "mx.test",
        "PIPELINING",
        "SIZE 12345",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
      ],
    }],
  });
  strictEqual(s.state, "greeted");
});

Deno.test("Session: STARTTLS and AUTH are advertised only when usable", () => {
  const ext = (opts: Parameters<typeof session>[0], tls: boolean) =>
    send(session(opts, { tls }), "EHLO c").replies[0].lines.slice(8);
  deepStrictEqual(ext({ starttls: true }, false), ["STARTTLS"]);
  deepStrictEqual(ext({ starttls: true }, true), []);
  deepStrictEqual(ext({ starttls: false }, false), []);
  deepStrictEqual(ext({ auth: true }, false), []);
  deepStrictEqual(ext({ auth: true }, true), ["AUTH PLAIN LOGIN"]);
  deepStrictEqual(ext({ auth: true, authOnPlaintext: true }, false), ["AUTH PLAIN LOGIN"]);
  deepStrictEqual(ext({ auth: false, authOnPlaintext: true }, false), []);
  deepStrictEqual(ext({ starttls: true, auth: true }, false), ["STARTTLS"]);
  deepStrictEqual(ext({ starttls: true, auth: true, authOnPlaintext: true }, false), [
    "STARTTLS",
    "AUTH PLAIN LOGIN",
  ]);
});

Deno.test("Session: HELO replies with the hostname only and means plain SMTP", () => {
  const s = session();
  deepStrictEqual(send(s, "HELO client.example"), {
    replies: [{ code: 250, enhanced: undefined, lines: ["mx.test"] }],
  });
  strictEqual(s.state, "greeted");
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=10"), 555, "5.5.4", /EHLO/);
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  strictEqual(envelope.protocol, "SMTP");
  strictEqual(envelope.helo, "client.example");
});

Deno.test("Session: EHLO/HELO need exactly one name", () => {
  const s = session();
  expectReply(send(s, "EHLO"), 501, "5.5.4", /EHLO hostname/);
  expectReply(send(s, "EHLO   "), 501, "5.5.4");
  expectReply(send(s, "HELO a b"), 501, "5.5.4", /HELO hostname/);
  strictEqual(s.state, "connected");
  strictEqual(s.errors, 3);
});

Deno.test("Session: MAIL before EHLO is 503", () => {
  const s = session();
  transcript(s, [
    "S: 220 mx.test ESMTP Carrier",
    "C: MAIL FROM:<a@b.c>",
    "S: 503 5.5.1 Error: send HELO/EHLO first",
  ]);
  strictEqual(s.state, "connected");
});

Deno.test("Session: nested MAIL is 503", () => {
  const s = session();
  const steps = transcript(s, [
    "C: EHLO c",
    "S: 250",
    "C: MAIL FROM:<a@b.c>",
    "S: 250 2.1.0 Ok",
    "C: MAIL FROM:<x@y.z>",
    "S: 503 5.5.1 Error: nested MAIL command",
    "C: RCPT TO:<d@e.f>",
    "S: 250 2.1.5 Ok",
    "C: MAIL FROM:<x@y.z>",
    "S: 503 5.5.1 Error: nested MAIL command",
    "C: DATA",
    "S: 354 End data with <CR><LF>.<CR><LF>",
  ]);
  strictEqual(dataEnvelope(steps[5]).sender, "a@b.c");
});

Deno.test("Session: RCPT before MAIL is 503", () => {
  transcript(session(), [
    "C: RCPT TO:<d@e.f>",
    "S: 503 5.5.1 Error: need MAIL command",
    "C: EHLO c",
    "S: 250",
    "C: RCPT TO:<d@e.f>",
    "S: 503 5.5.1 Error: need MAIL command",
  ]);
});

Deno.test("Session: DATA before RCPT is 503, after MAIL without recipients 554", () => {
  const s = session();
  transcript(s, [
    "C: DATA",
    "S: 503 5.5.1 Error: need RCPT command",
    "C: EHLO c",
    "S: 250",
    "C: DATA",
    "S: 503 5.5.1 Error: need RCPT command",
    "C: MAIL FROM:<a@b.c>",
    "S: 250 2.1.0 Ok",
    "C: DATA",
    "S: 554 5.5.1 Error: no valid recipients",
  ]);
  strictEqual(s.state, "mail");
  transcript(s, [
    "C: RCPT TO:<d@e.f>",
    "S: 250 2.1.5 Ok",
    "C: DATA extra",
    "S: 501 5.5.4 Syntax: DATA",
  ]);
  strictEqual(s.state, "rcpt");
});

Deno.test("Session: a whole transaction, the data effect and its envelope", () => {
  const s = session({}, { address: "198.51.100.4", port: 1234 });
  ok2xx(s, "EHLO client.example");
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=500 BODY=8BITMIME"), 250, "2.1.0");
  strictEqual(s.state, "mail");
  expectReply(send(s, "RCPT TO:<d@e.f>"), 250, "2.1.5");
  strictEqual(s.state, "rcpt");
  expectReply(send(s, "RCPT TO:<g@h.i>"), 250, "2.1.5");
  const step = send(s, "DATA");
  expectReply(step, 354, undefined, /<CR><LF>\.<CR><LF>/);
  deepStrictEqual(step.effect, {
    kind: "data",
    envelope: {
      sender: "a@b.c",
      recipients: ["d@e.f", "g@h.i"],
      smtputf8: false,
      body: "8BITMIME",
      declaredSize: 500,
      helo: "client.example",
      client: { address: "198.51.100.4", port: 1234, tls: false },
      user: undefined,
      protocol: "ESMTP",
      dsn: {},
      recipientDsn: [{}, {}],
    },
  });
  strictEqual(s.state, "data");
  throws(() => send(s, "NOOP"), /data state/);
  const done = s.dataFinished({ kind: "stored", id: "Q1X2Y3" });
  deepStrictEqual(done, { replies: [reply(250, "2.0.0", "Ok: queued as Q1X2Y3")] });
  strictEqual(s.state, "greeted");
  // The transaction is over: a new MAIL is accepted, and its recipients start empty.
  ok2xx(s, "MAIL FROM:<>");
  expectReply(send(s, "DATA"), 554, "5.5.1");
  ok2xx(s, "RCPT TO:<x@y.z>");
  const next = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([next.sender, next.recipients, next.body, next.declaredSize], [
    "",
    ["x@y.z"],
    "7BIT",
    undefined,
  ]);
});

Deno.test("Session: the envelope is a copy", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  envelope.recipients.push("evil@x.y");
  envelope.client.tls = true;
  s.dataFinished({ kind: "stored", id: "1" });
  strictEqual(s.client.tls, false);
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  deepStrictEqual(dataEnvelope(send(s, "DATA")).recipients, ["d@e.f"]);
});

Deno.test("Session: dataFinished too-big is 552, store-failed 451; both reset", () => {
  for (
    const [kind, code, enhanced] of [
      ["too-big", 552, "5.3.4"],
      ["store-failed", 451, "4.3.0"],
    ] as const
  ) {
    const s = session();
    ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA");
    expectReply(s.dataFinished({ kind }), code, enhanced);
    strictEqual(s.state, "greeted");
    strictEqual(s.errors, 1);
    expectReply(send(s, "RCPT TO:<d@e.f>"), 503, "5.5.1");
    ok2xx(s, "MAIL FROM:<a@b.c>");
  }
  throws(() => session().dataFinished({ kind: "stored", id: "x" }), /outside of data/);
});

Deno.test("Session: unknown verbs are 500 5.5.2; EXPN and friends 502", () => {
  const s = session();
  expectReply(send(s, "FOO bar"), 500, "5.5.2", /not recognized/);
  expectReply(send(s, ""), 500, "5.5.2");
  expectReply(send(s, " EHLO x"), 500, "5.5.2");
  expectReply(send(s, "EXPN list"), 502, "5.5.1", /EXPN not implemented/);
  expectReply(send(s, "turn"), 502, "5.5.1", /TURN/);
  expectReply(send(s, "ETRN x"), 502, "5.5.1");
  strictEqual(s.errors, 6);
});

Deno.test("Session: verbs and FROM:/TO: are case-insensitive", () => {
  const s = session();
  ok2xx(s, "ehlo c", "mail from:<a@b.c> size=10 body=8bitmime", "Rcpt To:<d@e.f>", "noop");
  const envelope = dataEnvelope(send(s, "data"));
  strictEqual(envelope.body, "8BITMIME");
  strictEqual(envelope.declaredSize, 10);
});

Deno.test("Session: RSET resets the transaction", () => {
  const s = session();
  transcript(s, ["C: RSET", "S: 250 2.0.0 Ok"]);
  strictEqual(s.state, "connected", "RSET does not greet");
  transcript(s, [
    "C: EHLO c",
    "S: 250",
    "C: MAIL FROM:<a@b.c>",
    "S: 250 2.1.0 Ok",
    "C: RCPT TO:<d@e.f>",
    "S: 250 2.1.5 Ok",
    "C: RSET",
    "S: 250 2.0.0 Ok",
  ]);
  strictEqual(s.state, "greeted");
  const steps = transcript(s, [
    "C: DATA",
    "S: 503 5.5.1 Error: need RCPT command",
    "C: MAIL FROM:<x@y.z>",
    "S: 250 2.1.0 Ok",
    "C: RCPT TO:<r@s.t>",
    "S: 250 2.1.5 Ok",
    "C: DATA",
    "S: 354 End data with <CR><LF>.<CR><LF>",
  ]);
  const envelope = dataEnvelope(steps[3]);
  deepStrictEqual([envelope.sender, envelope.recipients], ["x@y.z", ["r@s.t"]]);
  s.dataFinished({ kind: "stored", id: "1" });
  transcript(s, ["C: RSET now", "S: 501 5.5.4 Syntax: RSET"]);
});

Deno.test("Session: a new EHLO resets the transaction", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c> SMTPUTF8", "RCPT TO:<d@e.f>", "EHLO again");
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<x@y.z>");
  expectReply(send(s, "DATA"), 554, "5.5.1");
  ok2xx(s, "RCPT TO:<r@s.t>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.recipients, envelope.smtputf8, envelope.helo], [
    ["r@s.t"],
    false,
    "again",
  ]);
});

Deno.test("Session: VRFY 252, HELP 214, NOOP 250", () => {
  const s = session();
  expectReply(send(s, "VRFY someone"), 252, "2.5.0", /Cannot VRFY/);
  expectReply(send(s, "VRFY"), 501, "5.5.4");
  const help = expectReply(send(s, "HELP"), 214, "2.0.0");
  ok(help.lines.length >= 2 && help.lines.some((l) => /EHLO.*STARTTLS/.test(l)));
  expectReply(send(s, "HELP MAIL"), 214, "2.0.0");
  expectReply(send(s, "NOOP"), 250, "2.0.0", /^Ok$/);
  expectReply(send(s, "NOOP anything"), 250, "2.0.0");
  strictEqual(s.state, "connected");
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "NOOP", "VRFY x", "HELP");
  strictEqual(s.state, "mail", "NOOP, VRFY and HELP keep the transaction");
});

Deno.test("Session: QUIT replies 221 and closes", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  const step = send(s, "QUIT");
  deepStrictEqual(step, { replies: [reply(221, "2.0.0", "Bye")], effect: { kind: "close" } });
  strictEqual(s.state, "closed");
  deepStrictEqual(send(s, "NOOP"), { replies: [] });
  deepStrictEqual(s.receive({ bytes: enc("x"), complete: false, start: true }), { replies: [] });
});

Deno.test("Session: timeout and shutdown reply 421 and close", () => {
  const a = session();
  const t = a.timeout();
  expectReply(t, 421, "4.4.2", /mx\.test.*timeout/);
  deepStrictEqual(t.effect, { kind: "close" });
  strictEqual(a.state, "closed");
  const b = session();
  const sd = b.shutdown();
  expectReply(sd, 421, "4.3.2", /mx\.test.*shutting down/);
  deepStrictEqual(sd.effect, { kind: "close" });
  strictEqual(b.state, "closed");
});
