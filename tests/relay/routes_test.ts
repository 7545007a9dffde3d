import { deepStrictEqual } from "node:assert/strict";
import { Router } from "../../src/relay/routes.ts";

const router = new Router({
  defaultVia: [0, 1],
  routes: [
    { from: ["*@ops.example.org", "billing@example.org"], to: [], via: [2] },
    { from: [], to: ["customer.example", "*.customer.example"], via: [3, 0] },
    { from: ["<>"], to: [], via: [1] },
    { from: ["*@example.org"], to: ["partner.example"], via: [3] },
  ],
});

Deno.test("Router: the first matching route, else the default list", () => {
  const cases: [string | undefined, string, number, number[]][] = [
    ["cron@ops.example.org", "bob@gmail.com", 0, [2]],
    ["CRON@OPS.Example.ORG", "bob@gmail.com", 0, [2]], // case does not matter
    ["billing@example.org", "x@customer.example", 0, [2]], // the first match wins
    ["other@example.org", "x@customer.example", 1, [3, 0]],
    ["other@example.org", "x@eu.customer.example", 1, [3, 0]], // a subdomain
    ["other@example.org", "x@notcustomer.example", -1, [0, 1]],
    ["", "postmaster@example.net", 2, [1]], // the null sender (bounces)
    ["other@example.org", "x@partner.example", 3, [3]], // both conditions
    ["other@example.net", "x@partner.example", -1, [0, 1]], // only one of them
    [undefined, "x@partner.example", -1, [0, 1]], // no sender: routes by sender never match
    ["a@ops.example.org.evil", "b@c.example", -1, [0, 1]],
  ];
  for (const [sender, recipient, rule, via] of cases) {
    deepStrictEqual(router.route(sender, recipient), { rule, via }, `${sender} -> ${recipient}`);
  }
});

Deno.test("Router.group: recipients with different routes in separate groups, in order", () => {
  deepStrictEqual(
    router.group("app@example.org", [
      "a@gmail.com",
      "b@customer.example",
      "c@yahoo.com",
      "d@eu.customer.example",
    ]),
    [
      { via: [0, 1], recipients: ["a@gmail.com", "c@yahoo.com"] },
      { via: [3, 0], recipients: ["b@customer.example", "d@eu.customer.example"] },
    ],
  );
});
