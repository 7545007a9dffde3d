/**
 * Named upstreams, routes and quotas through the real server: a TOML file with two
 * smarthosts (each with its own password), routes by sender and by recipient domain, a
 * daily quota that spills over to the next upstream, and a rate that makes mail wait.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { type CarrierProcess, runCarrier, startCarrier } from "../support/carrier.ts";
import { sendRaw } from "../support/mail_client.ts";
import { type Smarthost, startSmarthost } from "../support/smarthost.ts";
import { makeTestPki, type TestPki } from "../support/tls.ts";

const MAIN_PASSWORD = "main-app-pass";
const OTHER_PASSWORD = "other-api-key";

interface Pair {
  pki: TestPki;
  main: Smarthost;
  other: Smarthost;
  carrier: CarrierProcess;
  dir: string;
}

/** Two smarthosts and Carrier with `toml` (MAIN_PORT, OTHER_PORT, CA and DIR filled in). */
async function withPair(toml: string, fn: (p: Pair) => Promise<void>): Promise<void> {
  const pki = await makeTestPki();
  const main = await startSmarthost({ pki, users: { main: MAIN_PASSWORD } });
  const other = await startSmarthost({ pki, users: { other: OTHER_PASSWORD } });
  const dir = await Deno.makeTempDir({ prefix: "carrier-routes-" });
  let carrier: CarrierProcess | undefined;
  try {
    await Deno.writeTextFile(join(dir, "other.pass"), `${OTHER_PASSWORD}\n`);
    const path = join(dir, "carrier.toml");
    await Deno.writeTextFile(
      path,
      toml.replaceAll("MAIN_PORT", String(main.port)).replaceAll("OTHER_PORT", String(other.port))
        .replaceAll("CA", pki.caCertPath).replaceAll("DIR", dir),
    );
    carrier = await startCarrier({
      args: ["--config", path, "--retry-min", "1s", "--retry-max", "2s"],
      env: { CARRIER_UPSTREAM_PASSWORD_MAIN: MAIN_PASSWORD },
    });
    await fn({ pki, main, other, carrier, dir });
  } finally {
    await carrier?.stop();
    await main.close();
    await other.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const UPSTREAMS = `
[upstream]
upstream_ca = "CA"
upstream_servername = "localhost"

[upstreams.main]
url = "starttls://main@127.0.0.1:MAIN_PORT"

[upstreams.other]
url = "starttls://other@127.0.0.1:OTHER_PORT"
password_file = "DIR/other.pass"
`;

/** Sends one message; returns its queue id. */
function send(port: number, from: string, to: string[]): Promise<string> {
  return sendRaw(port, from, to, `Subject: to ${to.join(" ")}\r\n\r\nbody\r\n`);
}

Deno.test("routes: by sender and by recipient domain; one message split between upstreams", async () => {
  const toml = UPSTREAMS.replace("[upstream]\n", '[upstream]\nupstream = ["main"]\n') + `
[[routes]]
from = "*@ops.example.org"
via = ["other", "main"]

[[routes]]
to = ["customer.example", "*.customer.example"]
via = "other"
`;
  await withPair(toml, async ({ main, other, carrier, dir }) => {
    const mixed = await send(carrier.port, "app@example.com", [
      "a@gmail.test",
      "b@customer.example",
      "c@yahoo.test",
      "d@eu.customer.example",
    ]);
    await main.waitFor(1, 15_000);
    await other.waitFor(1, 15_000);
    deepStrictEqual(main.received[0]!.to, ["a@gmail.test", "c@yahoo.test"]);
    deepStrictEqual(other.received[0]!.to, ["b@customer.example", "d@eu.customer.example"]);
    strictEqual(other.received[0]!.user, "other"); // its own password, from its file
    strictEqual(main.received[0]!.user, "main"); // from CARRIER_UPSTREAM_PASSWORD_MAIN
    await carrier.waitForLog(new RegExp(`removed id=${mixed} delivered=4`));
    const logs = carrier.logs();
    ok(logs.includes(`delivered id=${mixed} to=<b@customer.example> upstream=other`), logs);
    ok(logs.includes(`delivered id=${mixed} to=<a@gmail.test> upstream=main`), logs);
    await send(carrier.port, "cron@ops.example.org", ["z@gmail.test"]);
    await other.waitFor(2, 15_000);
    deepStrictEqual(other.received[1]!.to, ["z@gmail.test"]);
    strictEqual(main.received.length, 1);
    // What `carrier route` says is what happened.
    const config = join(dir, "carrier.toml");
    const route = await runCarrier(["route", "--config", config, "b@customer.example"]);
    strictEqual(route.code, 0, route.stderr);
    ok(
      route.stdout.startsWith(
        "<b@customer.example> from any sender: routes[1] (to customer.example, *.customer.example)\n" +
          `  1. other starttls://other@127.0.0.1:${other.port}\n`,
      ),
      route.stdout,
    );
    const bySender = await runCarrier([
      "route",
      "--config",
      config,
      "--from",
      "cron@ops.example.org",
      "z@gmail.test",
      "--json",
    ]);
    deepStrictEqual(JSON.parse(bySender.stdout), [{
      recipient: "z@gmail.test",
      sender: "cron@ops.example.org",
      route: "routes[0]",
      upstreams: ["other", "main"],
    }]);
  });
});

Deno.test("a daily quota spills over to the next upstream; a rate makes mail wait, visibly, then go", async () => {
  const toml = UPSTREAMS.replace("[upstream]\n", '[upstream]\nupstream = ["main", "other"]\n')
    .replace(
      'url = "starttls://main@127.0.0.1:MAIN_PORT"',
      'url = "starttls://main@127.0.0.1:MAIN_PORT"\ndaily_messages = 2',
    ).replace(
      'password_file = "DIR/other.pass"',
      'password_file = "DIR/other.pass"\nmessages_per_minute = 1',
    );
  await withPair(toml, async ({ main, other, carrier }) => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(await send(carrier.port, "app@example.com", [`r${i}@example.net`]));
      // One at a time, so which message each upstream gets is known.
      await carrier.waitForLog(new RegExp(`(removed|deferred) id=${ids[i]}`), 15_000);
    }
    strictEqual(main.received.length, 2);
    strictEqual(other.received.length, 1); // one a minute: the fourth waits
    deepStrictEqual(main.received.map((m) => m.to[0]), ["r0@example.net", "r1@example.net"]);
    deepStrictEqual(other.received[0]!.to, ["r2@example.net"]);
    const waiting = ids[3]!;
    const list = await runCarrier(["queue", "list", "--spool", carrier.spool, "--json"]);
    strictEqual(list.code, 0, list.stderr);
    const [queued] = JSON.parse(list.stdout).messages;
    strictEqual(queued.id, waiting);
    strictEqual(queued.attempts, 0); // a quota wait is not a failed attempt
    strictEqual(
      queued.lastError,
      "upstream main daily quota of 2 messages reached; " +
        "upstream other rate of 1 messages a minute reached",
    );
    const wait = Date.parse(queued.nextAttemptAt) - Date.now();
    ok(wait > 30_000 && wait <= 60_000, `next attempt in ${wait} ms`);
    const text = await runCarrier(["queue", "list", "--spool", carrier.spool]);
    ok(/attempts 0 {2}next in \d+(s|m)\n/.test(text.stdout), text.stdout);
    ok(text.stdout.includes("last error: upstream main daily quota of 2 messages"), text.stdout);
    ok(carrier.logs().includes(`deferred id=${waiting}`), carrier.logs());
    // The day's counts are kept for a restart (written within a second of a send).
    const stateFile = join(carrier.spool, "quota-state.json");
    let saved;
    for (let i = 0; i < 50 && !saved?.upstreams?.main; i++) {
      saved = await Deno.readTextFile(stateFile).then(JSON.parse).catch(() => undefined);
      if (!saved?.upstreams?.main) await new Promise((r) => setTimeout(r, 100));
    }
    strictEqual(saved.upstreams.main.length, 2);
    // The rate spreads delivery: the waiting message goes a minute after the one before it.
    await other.waitFor(2, 75_000);
    deepStrictEqual(other.received[1]!.to, ["r3@example.net"]);
    await carrier.waitForLog(new RegExp(`removed id=${waiting}`));
    const at = (id: string) =>
      Date.parse(
        carrier.logs().split("\n").find((l) => l.includes(`delivered id=${id} `))!.split(" ")[0]!,
      );
    const gap = at(waiting) - at(ids[2]!);
    ok(gap >= 59_000, `the second message through "other" came ${gap} ms after the first`);
  });
});
