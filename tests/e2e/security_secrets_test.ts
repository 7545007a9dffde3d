/**
 * End-to-end test that no secret reaches a log line: AUTH passwords (right, wrong,
 * malformed) and the upstream password, with the real server and a real smarthost.
 */

import { ok, strictEqual } from "node:assert/strict";
import { runCarrier, startCarrier, swaks } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";
import {
  ALICE_PASSWORD,
  authArgs,
  message,
  tlsArgs,
  usersFile,
  waitForCount,
} from "../support/security.ts";
import { startSmarthost } from "../support/smarthost.ts";
import { makeTestPki } from "../support/tls.ts";

Deno.test("no secret in any log line: AUTH passwords (right, wrong, malformed) and the upstream password", async () => {
  const pki = await makeTestPki();
  const users = await usersFile();
  const upstreamPassword = "Upstream-S3cret-q8z";
  const wrongPassword = "Wrong-Guess-77x";
  const env = { CARRIER_UPSTREAM_PASSWORD: upstreamPassword };
  // A real upstream that receives the password (over STARTTLS) and refuses it with 535.
  const smarthost = await startSmarthost({ pki, users: { u: "not-the-one-carrier-has" } });
  const upstream = [
    "--upstream",
    `starttls://u@127.0.0.1:${smarthost.port}`,
    "--upstream-ca",
    pki.caCertPath,
    "--upstream-servername",
    "localhost",
  ];
  const carrier = await startCarrier({
    args: [...tlsArgs(pki), "--users", users, "--auth-on-plaintext-loopback", ...upstream],
    env,
  }).catch(async (e) => {
    await smarthost.close();
    throw e;
  });
  let stopped = false;
  const client = await RawClient.connect(carrier.port);
  try {
    const server = ["--server", `127.0.0.1:${carrier.port}`, "--tls"];
    for (const mechanism of ["PLAIN", "LOGIN"] as const) {
      const sent = await swaks([
        ...server,
        ...authArgs(mechanism, "alice", ALICE_PASSWORD),
        ...message(`secret-${mechanism}`),
      ]);
      strictEqual(sent.code, 0, sent.output);
    }
    await client.reply();
    await client.send("EHLO x.test\r\n");
    await client.reply();
    // Malformed (no leading authzid field), then wrong, then LOGIN with the password as user name.
    await client.send(`AUTH PLAIN ${btoa(`alice\0${ALICE_PASSWORD}`)}\r\n`);
    strictEqual((await client.reply()).code, 501);
    await client.send(`AUTH PLAIN ${btoa(`\0alice\0${wrongPassword}`)}\r\n`);
    strictEqual((await client.reply()).code, 535);
    await client.send("QUIT\r\n");
    strictEqual((await client.reply()).code, 221);
    // Tried upstream and refused at AUTH (535): deferred, not bounced; the queue then pauses.
    await waitForCount(carrier, / deferred id=\S+ rcpts=1 attempts=1 .*535/, 1);
    await waitForCount(carrier, / error upstream unavailable .*535/, 1);
    strictEqual(smarthost.received.length, 0);
    strictEqual(await carrier.stop(), 0);
    stopped = true;
    const checked = await runCarrier(["check-config", "--spool", carrier.spool, ...upstream], {
      env,
    });
    strictEqual(checked.code, 0, checked.stderr);

    const logs = carrier.logs();
    ok(logs.includes(" auth ok ") && logs.includes(" auth failed "), logs);
    const outputs = { logs, checkConfig: checked.stdout + checked.stderr };
    for (
      const [secret, user] of [[ALICE_PASSWORD, "alice"], [wrongPassword, "alice"], [
        upstreamPassword,
        "u",
      ]]
    ) {
      const forms = [
        secret,
        btoa(secret),
        btoa(`\0${user}\0${secret}`),
        btoa(`${user}\0${secret}`),
        JSON.stringify(secret).slice(1, -1),
      ];
      for (const [where, text] of Object.entries(outputs)) {
        for (const form of forms) ok(!text.includes(form), `${where} contains ${form}`);
      }
    }
  } finally {
    client.close();
    if (!stopped) await carrier.stop();
    await smarthost.close();
  }
});
