/**
 * End-to-end readiness and labelled metrics: /readyz on a healthy server, with
 * an unwritable spool, with an upstream down past --ready-upstream-outage, and
 * after shutdown begins; /metrics after a real delivery and a real refusal.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { type CarrierProcess, freePort, startCarrier, swaks } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import { startSmarthost } from "../support/smarthost.ts";
import { makeTestPki } from "../support/tls.ts";

async function metricsBase(carrier: CarrierProcess): Promise<string> {
  const line = await carrier.waitForLog(/metrics listening address=/);
  return `http://127.0.0.1:${/address=127\.0\.0\.1:(\d+)/.exec(line)?.[1]}`;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

/** Polls `url` until its answer satisfies `done` (bounded: 75 tries, 200 ms apart). */
async function waitForAnswer(
  url: string,
  done: (a: { status: number; body: string }) => boolean,
): Promise<{ status: number; body: string }> {
  let answer = await get(url);
  for (let i = 0; i < 75 && !done(answer); i++) {
    await new Promise((r) => setTimeout(r, 200));
    answer = await get(url);
  }
  return answer;
}

Deno.test("readyz 200 on a healthy server; /metrics labels a delivery and a refusal", async () => {
  const smarthost = await startSmarthost({ pki: await makeTestPki(), starttls: false });
  const carrier = await startCarrier({
    args: [
      "--metrics-listen",
      "127.0.0.1:0",
      "--upstream",
      `smtp://127.0.0.1:${smarthost.port}`,
      "--max-message-size",
      "2K",
    ],
  });
  try {
    const base = await metricsBase(carrier);
    deepStrictEqual(await get(`${base}/readyz`), { status: 200, body: "ready\n" });
    const sent = await swaks(["--server", `127.0.0.1:${carrier.port}`, "--to", "a@example.com"]);
    strictEqual(sent.code, 0, sent.output);
    await smarthost.waitFor(1, 20_000);
    const big = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--to",
      "a@example.com",
      "--body",
      "x".repeat(4000),
    ]);
    match(big.output, /^<\*\* 552 /m);
    const { status, body } = await waitForAnswer(
      `${base}/metrics`,
      (a) => /^carrier_delivery_outcomes_total\{outcome="delivered",[^}]*\} 1$/m.test(a.body),
    );
    strictEqual(status, 200);
    match(body, /^carrier_delivery_outcomes_total\{outcome="delivered",upstream="[^"]+"\} 1$/m);
    match(body, /^carrier_delivery_outcomes_total\{outcome="failed",upstream="[^"]+"\} 0$/m);
    match(body, /^carrier_refusals_total\{reason="message_rejected"\} 1$/m);
    match(body, /^carrier_refusals_total\{reason="relay_denied"\} 0$/m);
    match(body, /^carrier_build_info\{version="\d+\.\d+\.\d+"\} 1$/m);
    match(body, /^carrier_upstream_reply_seconds_count\{upstream="[^"]+"\} 1$/m);
    match(body, /^carrier_upstream_reply_seconds_bucket\{upstream="[^"]+",le="\+Inf"\} 1$/m);
    match(body, /^carrier_queue_depth\{state="due"\} 0$/m);
    match(body, /^carrier_queue_oldest_message_age_seconds 0$/m);
    match(body, /^carrier_upstream_paused 0$/m);
    match(body, /^carrier_deliveries_total 1$/m, "the plain counters keep their names");
  } finally {
    await carrier.stop();
    await smarthost.close();
  }
});

Deno.test("readyz 503 when the spool cannot be written (tmp/ replaced by a file: works as root)", async () => {
  const carrier = await startCarrier({ args: ["--metrics-listen", "127.0.0.1:0"] });
  try {
    const base = await metricsBase(carrier);
    strictEqual((await get(`${base}/readyz`)).status, 200);
    // chmod does not stop root; a file where the directory was stops everyone.
    await Deno.remove(`${carrier.spool}/tmp`, { recursive: true });
    await Deno.writeTextFile(`${carrier.spool}/tmp`, "not a directory\n");
    const answer = await waitForAnswer(`${base}/readyz`, (a) => a.status === 503);
    strictEqual(answer.status, 503);
    match(answer.body, /^not ready: spool not writable: .+\n$/);
    strictEqual(answer.body.split("\n").length, 2, "one line");
    ok((await get(`${base}/healthz`)).status === 200, "liveness is not readiness");
  } finally {
    await carrier.stop();
  }
});

Deno.test("readyz 503 once the upstream has been down longer than --ready-upstream-outage", async () => {
  const carrier = await startCarrier({
    args: [
      "--metrics-listen",
      "127.0.0.1:0",
      "--upstream",
      `smtp://127.0.0.1:${freePort()}`,
      "--ready-upstream-outage",
      "1s",
      "--retry-min",
      "1s",
      "--retry-max",
      "2s",
    ],
  });
  try {
    const base = await metricsBase(carrier);
    strictEqual((await get(`${base}/readyz`)).status, 200, "ready before any failure");
    const sent = await swaks(["--server", `127.0.0.1:${carrier.port}`, "--to", "a@example.com"]);
    strictEqual(sent.code, 0, sent.output);
    await carrier.waitForLog(/ upstream unavailable /);
    const answer = await waitForAnswer(`${base}/readyz`, (a) => a.status === 503);
    strictEqual(answer.status, 503);
    match(answer.body, /^not ready: upstream failing for \d+s \(limit 1s\)\n$/);
    const metrics = (await get(`${base}/metrics`)).body;
    match(metrics, /^carrier_upstream_failing_seconds [1-9]\d*$/m);
    match(metrics, /^carrier_queue_depth\{state="(due|deferred)"\} 1$/m);
  } finally {
    await carrier.stop();
  }
});

Deno.test("readyz 503 after shutdown begins, while a transaction may still finish", async () => {
  const carrier = await startCarrier({
    args: ["--metrics-listen", "127.0.0.1:0", "--shutdown-timeout", "20s"],
  });
  const busy = await RawClient.connect(carrier.port);
  try {
    const base = await metricsBase(carrier);
    strictEqual((await get(`${base}/readyz`)).status, 200);
    await busy.reply();
    await busy.send(
      "EHLO busy.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
    );
    deepStrictEqual((await busy.replies(4)).map((r) => r.code), [250, 250, 250, 354]);
    carrier.child.kill("SIGTERM");
    await carrier.waitForLog(/ stopping signal=SIGTERM/);
    deepStrictEqual(await get(`${base}/readyz`), {
      status: 503,
      body: "not ready: shutting down: listeners closed\n",
    });
    await busy.send("Subject: x\r\n\r\nbody\r\n.\r\n");
    strictEqual((await busy.reply()).code, 250);
  } finally {
    busy.close();
    await carrier.stop();
  }
});
