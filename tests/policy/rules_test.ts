import { ok } from "node:assert/strict";
import { type AddressRules, recipientAllowed, senderAllowed } from "../../src/policy/rules.ts";

Deno.test("no rules allow every sender and recipient, including the null sender", () => {
  const rules: AddressRules = {};
  ok(senderAllowed(rules, "anyone@anywhere.test"));
  ok(senderAllowed(rules, ""));
  ok(senderAllowed(rules, "x@y.test", "alice"));
  ok(recipientAllowed(rules, "someone@example.org"));
});

Deno.test("sender patterns: full address, @domain and bare domain", () => {
  const rules: AddressRules = { senders: ["ops@example.com", "@corp.example", "mail.test"] };
  ok(senderAllowed(rules, "ops@example.com"));
  ok(senderAllowed(rules, "ops@EXAMPLE.com"), "domains are case-insensitive");
  ok(!senderAllowed(rules, "Ops@example.com"), "local parts compare exactly");
  ok(!senderAllowed(rules, "dev@example.com"));
  ok(senderAllowed(rules, "anyone@corp.example"));
  ok(senderAllowed(rules, "anyone@Corp.Example."));
  ok(!senderAllowed(rules, "anyone@sub.corp.example"), "no implicit subdomains");
  ok(senderAllowed(rules, "x@mail.test"));
  ok(!senderAllowed(rules, "x@evil-mail.test"));
  ok(!senderAllowed(rules, "postmaster"), "an address without a domain");
  ok(!senderAllowed(rules, ""), "the null sender is refused under a rule");
});

Deno.test("the domain is after the last @", () => {
  const rules: AddressRules = { senders: ["@example.com"], recipientDomains: ["example.com"] };
  ok(senderAllowed(rules, '"a@evil.test"@example.com'));
  ok(!senderAllowed(rules, "a@example.com@evil.test"));
  ok(recipientAllowed(rules, '"x@evil.test"@example.com'));
  ok(!recipientAllowed(rules, "x@example.com@evil.test"));
  const quoted: AddressRules = { senders: ['"a@b"@example.com'] };
  ok(senderAllowed(quoted, '"a@b"@example.com'));
  ok(!senderAllowed(quoted, "b@example.com"));
});

Deno.test("userSenders replaces senders for that user only", () => {
  const rules: AddressRules = {
    senders: ["@example.com"],
    userSenders: { alice: ["alice@example.com", "@alice.test"], bob: [] },
  };
  ok(senderAllowed(rules, "alice@example.com", "alice"));
  ok(senderAllowed(rules, "x@alice.test", "alice"));
  ok(!senderAllowed(rules, "other@example.com", "alice"));
  ok(!senderAllowed(rules, "", "alice"));
  ok(!senderAllowed(rules, "bob@example.com", "bob"), "an empty list allows nothing");
  ok(senderAllowed(rules, "other@example.com", "carol"), "users without an entry use senders");
  ok(senderAllowed(rules, "other@example.com"));
  ok(!senderAllowed(rules, "x@alice.test"));
});

Deno.test("userSenders alone restricts only listed users; prototype names are not users", () => {
  const rules: AddressRules = { userSenders: { alice: ["alice@example.com"] } };
  ok(!senderAllowed(rules, "x@example.com", "alice"));
  ok(senderAllowed(rules, "x@example.com", "bob"));
  ok(senderAllowed(rules, "", "bob"));
  ok(senderAllowed(rules, "x@example.com", "constructor"));
  ok(senderAllowed(rules, "x@example.com", "__proto__"));
});

Deno.test("recipient domains: exact match, or subdomains for a leading dot", () => {
  const rules: AddressRules = { recipientDomains: ["Example.com", ".corp.test", "@other.test"] };
  ok(recipientAllowed(rules, "a@example.com"));
  ok(recipientAllowed(rules, "a@EXAMPLE.COM"));
  ok(recipientAllowed(rules, "a@example.com."));
  ok(!recipientAllowed(rules, "a@sub.example.com"));
  ok(!recipientAllowed(rules, "a@notexample.com"));
  ok(recipientAllowed(rules, "a@mail.corp.test"));
  ok(recipientAllowed(rules, "a@x.y.corp.test"));
  ok(!recipientAllowed(rules, "a@corp.test"), ".corp.test means subdomains only");
  ok(!recipientAllowed(rules, "a@evilcorp.test"));
  ok(recipientAllowed(rules, "a@other.test"));
  ok(!recipientAllowed(rules, "postmaster"));
  ok(!recipientAllowed({ recipientDomains: [] }, "a@example.com"));
  ok(!recipientAllowed({ recipientDomains: ["", "."] }, "a@example.com"));
});
