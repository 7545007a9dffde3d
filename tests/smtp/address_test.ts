import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  AddressError,
  isDomain,
  parseMailbox,
  parseParams,
  parsePath,
} from "../../src/smtp/address.ts";

const STRICT = { allowNull: false, utf8: false };
const NULL_OK = { allowNull: true, utf8: false };
const UTF8 = { allowNull: false, utf8: true };

/** Asserts that `fn` throws an AddressError with the given code (and message part). */
function refuses(fn: () => unknown, code: 501 | 553, message?: RegExp): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof AddressError, `not an AddressError: ${e}`);
    strictEqual(e.code, code, `code for "${e.message}"`);
    if (message) ok(message.test(e.message), `message "${e.message}" !~ ${message}`);
    return true;
  });
}

Deno.test("parsePath: a plain address", () => {
  deepStrictEqual(parsePath("<a@b.c>", STRICT), { address: "a@b.c", rest: "", utf8: false });
  deepStrictEqual(parsePath("  <user.name+tag@sub.example.com>", STRICT), {
    address: "user.name+tag@sub.example.com",
    rest: "",
    utf8: false,
  });
  strictEqual(
    parsePath("<!#$%&'*+-/=?^_`{|}~@x.org>", STRICT).address,
    "!#$%&'*+-/=?^_`{|}~@x.org",
  );
});

Deno.test("parsePath: parameters after the path are returned trimmed", () => {
  deepStrictEqual(parsePath("<a@b.c> SIZE=100  BODY=8BITMIME ", STRICT), {
    address: "a@b.c",
    rest: "SIZE=100  BODY=8BITMIME",
    utf8: false,
  });
});

Deno.test("parsePath: the null path only where allowed", () => {
  deepStrictEqual(parsePath("<>", NULL_OK), { address: "", rest: "", utf8: false });
  deepStrictEqual(parsePath("<> SIZE=5", NULL_OK), { address: "", rest: "SIZE=5", utf8: false });
  refuses(() => parsePath("<>", STRICT), 501, /null/);
});

Deno.test("parsePath: quoted local parts", () => {
  strictEqual(parsePath('<"john doe"@example.com>', STRICT).address, '"john doe"@example.com');
  strictEqual(parsePath('<"a\\"b"@example.com>', STRICT).address, '"a\\"b"@example.com');
  // A ">" or "@" inside the quotes does not end the path or the local part.
  deepStrictEqual(parsePath('<"a>b@c"@example.com> X=1', STRICT), {
    address: '"a>b@c"@example.com',
    rest: "X=1",
    utf8: false,
  });
  strictEqual(parsePath('<"a\\\\"@example.com>', STRICT).address, '"a\\\\"@example.com');
});

Deno.test("parsePath: address literals", () => {
  strictEqual(parsePath("<postmaster@[192.0.2.1]>", STRICT).address, "postmaster@[192.0.2.1]");
  strictEqual(parsePath("<a@[IPv6:2001:db8::1]>", STRICT).address, "a@[IPv6:2001:db8::1]");
  strictEqual(parsePath("<a@[ipv6:::1]>", STRICT).address, "a@[ipv6:::1]");
  strictEqual(
    parsePath("<a@[IPv6:2001:db8:0:0:0:0:0:1]>", STRICT).address,
    "a@[IPv6:2001:db8:0:0:0:0:0:1]",
  );
  strictEqual(
    parsePath("<a@[IPv6:::ffff:192.0.2.1]>", STRICT).address,
    "a@[IPv6:::ffff:192.0.2.1]",
  );
  strictEqual(parsePath("<a@[x-tag:anything]>", STRICT).address, "a@[x-tag:anything]");
});

Deno.test("parsePath: bad address literals", () => {
  for (
    const literal of [
      "[300.1.1.1]",
      "[1.2.3]",
      "[1.2.3.4",
      "[IPv6:2001:db8::1::2]",
      "[IPv6:1:2:3:4:5:6:7:8:9]",
      "[IPv6:1:2:3:4:5:6:7]",
      "[IPv6:1:2:3:4:5:6:7:8::]",
      "[IPv6:1:::2]",
      "[IPv6:1::2:]",
      "[IPv6::::]",
      "[IPv6:12345::1]",
      "[IPv6:g::1]",
      "[IPv6:::ffff:300.1.1.1]",
      "[IPv6:1:2:3:4:5:6:7:1.2.3.4]",
      "[:x]",
      "[ta g:x]",
      "[tag-:x]",
      "[tag:]",
      "[tag:a[b]",
      "[]",
    ]
  ) {
    refuses(() => parsePath(`<a@${literal}>`, STRICT), 501, /literal/);
  }
});

Deno.test("parsePath: source routes are accepted and ignored", () => {
  deepStrictEqual(parsePath("<@a.example,@b.example:user@c.example>", STRICT), {
    address: "user@c.example",
    rest: "",
    utf8: false,
  });
  strictEqual(parsePath("<@a.example:user@c.example>", STRICT).address, "user@c.example");
  refuses(() => parsePath("<@a.example user@c.example>", STRICT), 501, /source route/);
  refuses(() => parsePath("<@a.example,b.example:user@c.example>", STRICT), 501, /source route/);
  refuses(() => parsePath("<@-a.example:user@c.example>", STRICT), 501, /source route/);
});

Deno.test("parsePath: UTF-8 mailboxes only with utf8", () => {
  deepStrictEqual(parsePath("<jörg@bücher.example>", UTF8), {
    address: "jörg@bücher.example",
    rest: "",
    utf8: true,
  });
  strictEqual(parsePath('<"日本 語"@例え.jp>', UTF8).address, '"日本 語"@例え.jp');
  strictEqual(parsePath("<a@b.c>", UTF8).utf8, false);
  refuses(() => parsePath("<jörg@example.com>", STRICT), 553, /SMTPUTF8/);
  refuses(() => parsePath("<jorg@bücher.example>", STRICT), 553, /SMTPUTF8/);
  refuses(() => parsePath('<"jö"@example.com>', STRICT), 553);
});

Deno.test("parsePath: syntax errors", () => {
  refuses(() => parsePath("a@b.c", STRICT), 501, /angle brackets/);
  refuses(() => parsePath("", STRICT), 501, /angle brackets/);
  refuses(() => parsePath("<a@b.c", STRICT), 501, /closing/);
  refuses(() => parsePath('<"a@b.c>', STRICT), 501, /closing/);
  refuses(() => parsePath("<ab.c>", STRICT), 501, /local-part@domain/);
  refuses(() => parsePath("<@b.c>", STRICT), 501);
  refuses(() => parsePath("<a..b@x>", STRICT), 501, /empty atom/);
  refuses(() => parsePath("<.a@x>", STRICT), 501, /empty atom/);
  refuses(() => parsePath("<a.@x>", STRICT), 501, /empty atom/);
  refuses(() => parsePath("<a b@x>", STRICT), 501, /bad character/);
  refuses(() => parsePath("<a@-x.com>", STRICT), 501, /bad domain/);
  refuses(() => parsePath("<a@x-.com>", STRICT), 501, /bad domain/);
  refuses(() => parsePath("<a@x..com>", STRICT), 501, /bad domain/);
  refuses(() => parsePath("<a@x.com.>", STRICT), 501, /bad domain/);
  refuses(() => parsePath("<a@>", STRICT), 501, /bad domain/);
  refuses(() => parsePath("<a@x_y.com>", STRICT), 501, /bad domain/);
  refuses(() => parsePath('<"a"b@x.com>', STRICT), 501, /quoted/);
  refuses(() => parsePath('<"a\tb"@x.com>', STRICT), 501, /quoted/);
  refuses(() => parsePath('<"a\\\u0001"@x.com>', STRICT), 501, /quoted pair/);
});

Deno.test("parsePath: parameters need a space after the closing bracket", () => {
  refuses(() => parsePath("<a@b.c>SIZE=10", STRICT), 501, /space/);
  refuses(() => parsePath("<>SIZE=10", NULL_OK), 501, /space/);
});

Deno.test("parsePath: length limits", () => {
  const local64 = "a".repeat(64);
  strictEqual(parsePath(`<${local64}@x.com>`, STRICT).address, `${local64}@x.com`);
  refuses(() => parsePath(`<${"a".repeat(65)}@x.com>`, STRICT), 553, /Local part too long/);
  // The limit is in octets: 33 two-byte characters are 66 octets.
  refuses(() => parsePath(`<${"ä".repeat(33)}@x.com>`, UTF8), 553, /Local part too long/);
  const label = "d".repeat(63);
  strictEqual(parsePath(`<a@${label}.com>`, STRICT).address, `a@${label}.com`);
  refuses(() => parsePath(`<a@${label}d.com>`, STRICT), 501, /bad domain/);
  // The whole path is at most 256 octets.
  const domain = Array(5).fill("d".repeat(49)).join("."); // 249 octets
  strictEqual(parsePath(`<ab@${domain}>`, STRICT).address.length, 252);
  refuses(() => parsePath(`<${"a".repeat(8)}@${domain}>`, STRICT), 501, /too long/);
});

Deno.test("parseMailbox: returns the mailbox as written", () => {
  strictEqual(parseMailbox("User@Example.COM", false), "User@Example.COM");
  strictEqual(parseMailbox("a@b@c.com".slice(2), false), "b@c.com");
  refuses(() => parseMailbox("a@b@c.com", false), 501, /bad character/);
});

Deno.test("isDomain", () => {
  ok(isDomain("example.com", false));
  ok(isDomain("localhost", false));
  ok(isDomain("a-b.c0", false));
  ok(isDomain("123.example", false));
  ok(!isDomain("", false));
  ok(!isDomain("-a.com", false));
  ok(!isDomain("a-.com", false));
  ok(!isDomain("a..com", false));
  ok(!isDomain(".a.com", false));
  ok(!isDomain("a b.com", false));
  ok(!isDomain("a_b.com", false));
  ok(!isDomain("bücher.de", false));
  ok(isDomain("bücher.de", true));
  ok(!isDomain(`${"a".repeat(64)}.com`, false));
  ok(isDomain(Array(4).fill("a".repeat(63)).join("."), false), "255 octets");
  ok(!isDomain(Array(4).fill("a".repeat(63)).join(".") + "a", false), "256 octets");
});

Deno.test("parseParams: keywords upper-cased, values kept", () => {
  deepStrictEqual(parseParams(""), []);
  deepStrictEqual(parseParams("size=100 body=8bitmime smtputf8"), [
    { keyword: "SIZE", value: "100" },
    { keyword: "BODY", value: "8bitmime" },
    { keyword: "SMTPUTF8", value: undefined },
  ]);
  deepStrictEqual(parseParams("X-Foo=a+b/c  AUTH=<>"), [
    { keyword: "X-FOO", value: "a+b/c" },
    { keyword: "AUTH", value: "<>" },
  ]);
});

Deno.test("parseParams: bad keywords and values", () => {
  refuses(() => parseParams("-X"), 501, /bad parameter/);
  refuses(() => parseParams("=1"), 501, /bad parameter/);
  refuses(() => parseParams("SI_ZE=1"), 501, /bad parameter/);
  refuses(() => parseParams(" SIZE=1"), 501, /bad parameter/);
  refuses(() => parseParams("SIZE="), 501, /bad value for SIZE/);
  refuses(() => parseParams("size=a=b"), 501, /bad value for SIZE/);
  refuses(() => parseParams("X=\u00e9"), 501, /bad value/);
  refuses(() => parseParams("X=a\tb"), 501, /bad value/);
});
