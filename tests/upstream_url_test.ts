import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { parseUpstreamUrl, upstreamNetTarget } from "../src/upstream_url.ts";

Deno.test("starttls with user, host and port", () => {
  deepStrictEqual(parseUpstreamUrl("starttls://me@smtp.example.com:2587"), {
    security: "starttls",
    host: "smtp.example.com",
    port: 2587,
    user: "me",
  });
});

Deno.test("default ports per scheme", () => {
  strictEqual(parseUpstreamUrl("starttls://smtp.example.com").port, 587);
  strictEqual(parseUpstreamUrl("smtps://smtp.example.com").port, 465);
  strictEqual(parseUpstreamUrl("smtp://127.0.0.1").port, 25);
  strictEqual(parseUpstreamUrl("smtps://smtp.example.com").security, "tls");
  strictEqual(parseUpstreamUrl("smtp://localhost:2525").security, "plain");
});

Deno.test("user containing @ splits on the last @", () => {
  deepStrictEqual(parseUpstreamUrl("starttls://me@gmail.com@smtp.gmail.com:587"), {
    security: "starttls",
    host: "smtp.gmail.com",
    port: 587,
    user: "me@gmail.com",
  });
  strictEqual(parseUpstreamUrl("starttls://me%40gmail.com@smtp.gmail.com").user, "me@gmail.com");
  strictEqual(parseUpstreamUrl("smtps://j%C3%BCrgen@mail.example.de").user, "j\u00fcrgen");
});

Deno.test("scheme and host are case-insensitive; trailing slash and dot allowed", () => {
  const c = parseUpstreamUrl("STARTTLS://User@SMTP.Example.COM./");
  strictEqual(c.host, "smtp.example.com");
  strictEqual(c.user, "User");
  strictEqual(c.security, "starttls");
});

Deno.test("IPv6 in brackets, servername parameter", () => {
  deepStrictEqual(parseUpstreamUrl("smtps://[2001:db8::1]:465?servername=mail.example.com"), {
    security: "tls",
    host: "2001:db8::1",
    port: 465,
    servername: "mail.example.com",
  });
  strictEqual(parseUpstreamUrl("smtp://[::1]:2525").host, "::1");
  throws(() => parseUpstreamUrl("smtps://2001:db8::1:465"), /brackets/);
  throws(() => parseUpstreamUrl("smtps://[2001:db8::zz]:465"), /IPv6/);
  throws(() => parseUpstreamUrl("smtps://[::1:465"), /\]/);
});

Deno.test("password in the URL is rejected without echoing it", () => {
  for (
    const url of [
      "starttls://me:hunter2secret@smtp.example.com:587",
      "starttls://me@gmail.com:hunter2secret@smtp.gmail.com",
      "smtps://:hunter2secret@smtp.example.com",
      "starttls://me:hunter2/secret@smtp.example.com",
      "bogus://me:hunter2secret@smtp.example.com",
    ]
  ) {
    throws(() => parseUpstreamUrl(url), (err: unknown) => {
      ok(err instanceof Error);
      ok(!err.message.includes("hunter2"), err.message);
      ok(!err.message.includes("\n"));
      return true;
    });
  }
  throws(
    () => parseUpstreamUrl("starttls://me:pw@smtp.example.com"),
    /CARRIER_UPSTREAM_PASSWORD or a password file/,
  );
});

Deno.test("plain smtp only to loopback", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "[::1]", "localhost", "[::ffff:127.0.0.1]"]) {
    strictEqual(parseUpstreamUrl(`smtp://${host}:25`).security, "plain");
  }
  for (
    const host of ["10.0.0.1", "smtp.example.com", "[2001:db8::1]", "128.0.0.1", "localhost.evil"]
  ) {
    throws(
      () => parseUpstreamUrl(`smtp://u@${host}:25`),
      /plain SMTP would send the password in clear; use starttls:\/\/ or smtps:\/\//,
    );
  }
});

Deno.test("malformed URLs give one-line errors naming the problem", () => {
  const cases: [string, RegExp][] = [
    ["smtp.example.com:587", /scheme/],
    ["http://smtp.example.com", /unsupported scheme "http"/],
    ["starttls://", /missing host/],
    ["starttls://smtp.example.com:0", /out of range/],
    ["starttls://smtp.example.com:99999", /out of range/],
    ["starttls://smtp.example.com:abc", /not a number/],
    ["starttls://smtp.example.com/path", /path/],
    ["starttls://@smtp.example.com", /empty user/],
    ["starttls://smtp_bad!.example.com", /not a valid host/],
    ["starttls://smtp.example.com?foo=1", /unknown parameter "foo"/],
    ["starttls://m%ZZe@smtp.example.com", /percent-encoding/],
    ["starttls://999.1.1.1", /not a valid host/],
  ];
  for (const [url, re] of cases) {
    throws(() => parseUpstreamUrl(url), (err: unknown) => {
      ok(err instanceof Error);
      ok(re.test(err.message), `${url}: ${err.message}`);
      ok(err.message.startsWith("invalid upstream URL: "));
      ok(!err.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("upstreamNetTarget brackets IPv6", () => {
  strictEqual(
    upstreamNetTarget(parseUpstreamUrl("starttls://smtp.gmail.com")),
    "smtp.gmail.com:587",
  );
  strictEqual(upstreamNetTarget(parseUpstreamUrl("smtps://[2001:db8::1]")), "[2001:db8::1]:465");
  strictEqual(upstreamNetTarget(parseUpstreamUrl("smtp://127.0.0.1:2525")), "127.0.0.1:2525");
});
