/**
 * End-to-end operations: the metrics and health endpoint, graceful stop on
 * SIGTERM (idle sessions told 421, a transaction in progress may finish), and
 * restart keeping the queue.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { freePort, runCarrier, startCarrier, swaks } from "../support/carrier.ts";
import { queuedIds } from "../support/spool.ts";
import { RawClient } from "../support/raw_client.ts";
import { makeTestPki } from "../support/tls.ts";

Deno.test("metrics endpoint: /healthz and Prometheus counters that follow the traffic", async () => {
  const carrier = await startCarrier({ args: ["--metrics-listen", "127.0.0.1:0"] });
  try {
    const line = await carrier.waitForLog(/metrics listening address=/);
    const port = Number(/address=127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    strictEqual(health.status, 200);
    strictEqual(await health.text(), "ok\n");
    const sent = await swaks(["--server", `127.0.0.1:${carrier.port}`, "--to", "a@example.com"]);
    strictEqual(sent.code, 0, sent.output);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    ok(metrics.includes("# TYPE carrier_messages_accepted_total counter"), metrics);
    ok(/^carrier_messages_accepted_total 1$/m.test(metrics), metrics);
    ok(/^carrier_connections_total 1$/m.test(metrics), metrics);
    const missing = await fetch(`http://127.0.0.1:${port}/nope`);
    strictEqual(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await carrier.stop();
  }
});

Deno.test("SIGTERM: an idle session gets 421, a transaction under way finishes, the queue survives a restart", async () => {
  const carrier = await startCarrier({ args: ["--shutdown-timeout", "10s"] });
  const idle = await RawClient.connect(carrier.port);
  const busy = await RawClient.connect(carrier.port);
  try {
    await idle.reply();
    await busy.reply();
    await busy.send(
      "EHLO busy.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
    );
    deepStrictEqual((await busy.replies(4)).map((r) => r.code), [250, 250, 250, 354]);
    await busy.send("Subject: in flight\r\n\r\nfirst half\r\n");
    carrier.child.kill("SIGTERM");
    await carrier.waitForLog(/ stopping signal=SIGTERM/);
    const bye = await idle.reply();
    strictEqual(bye.code, 421);
    ok(bye.raw.includes("4.3.2"));
    // The session in DATA may still complete its message.
    await busy.send("second half\r\n.\r\n");
    const done = await busy.reply();
    strictEqual(done.code, 250, done.raw);
    strictEqual(await carrier.stop(), 0);
    strictEqual((await queuedIds(carrier.spool)).length, 1);
    const restarted = await startCarrier({ spool: carrier.spool });
    try {
      const list = await runCarrier(["queue", "list", "--json", "--spool", carrier.spool]);
      strictEqual(JSON.parse(list.stdout).messages.length, 1);
    } finally {
      await restarted.stop();
    }
  } finally {
    idle.close();
    busy.close();
    await carrier.stop();
  }
});

/** Two unrelated PKIs and cert/key files holding the first one's, to swap before a SIGHUP. */
async function swappableCertificate() {
  const first = await makeTestPki();
  const second = await makeTestPki({ fresh: true });
  const dir = await Deno.makeTempDir({ prefix: "carrier-certs-" });
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  await Deno.copyFile(first.certPath, cert);
  await Deno.copyFile(first.keyPath, key);
  return { first, second, cert, key };
}

Deno.test("SIGHUP reloads the certificate: new STARTTLS sessions get the new one", async () => {
  const { first, second, cert, key } = await swappableCertificate();
  const carrier = await startCarrier({ args: ["--tls-cert", cert, "--tls-key", key] });
  const starttls = async (caCert: string) => {
    const client = await RawClient.connect(carrier.port);
    try {
      await client.reply();
      await client.send("EHLO x.test\r\nSTARTTLS\r\n");
      await client.replies(2);
      const tls = await Deno.startTls(client.conn as Deno.TcpConn, {
        hostname: "localhost",
        caCerts: [caCert],
      });
      try {
        await tls.handshake();
        return true;
      } catch {
        return false;
      } finally {
        tls.close();
      }
    } catch {
      client.close();
      return false;
    }
  };
  try {
    ok(await starttls(first.caCert), "first certificate served");
    await Deno.copyFile(second.certPath, cert);
    await Deno.copyFile(second.keyPath, key);
    carrier.child.kill("SIGHUP");
    await carrier.waitForLog(/ reloaded .*tls=yes/);
    ok(await starttls(second.caCert), "new certificate served after SIGHUP");
    ok(!(await starttls(first.caCert)), "old CA no longer matches");
    // A key that does not belong to the certificate changes nothing.
    await Deno.copyFile(first.keyPath, key);
    carrier.child.kill("SIGHUP");
    await carrier.waitForLog(/ reload failed; .*private key does not belong to the certificate/);
    ok(await starttls(second.caCert), "still served with the previous certificate");
  } finally {
    await carrier.stop();
  }
});

Deno.test("one server per spool: a second carrier on the same spool refuses to start", async () => {
  const first = await startCarrier();
  try {
    const second = await runCarrier([
      "serve",
      "--spool",
      first.spool,
      "--listen",
      "127.0.0.1:0",
    ]);
    strictEqual(second.code, 2);
    strictEqual(
      second.stderr.trim(),
      `carrier: spool: ${first.spool} is in use by another carrier process`,
    );
  } finally {
    await first.stop();
  }
});

Deno.test("SIGHUP keeps implicit-TLS listeners serving with the new certificate", async () => {
  const { first, second, cert, key } = await swappableCertificate();
  // A fixed port: the listener is reopened on it, and the permission names it.
  const tlsPort = freePort();
  const carrier = await startCarrier({
    args: ["--tls-cert", cert, "--tls-key", key, "--listen-tls", `127.0.0.1:${tlsPort}`],
  });
  const greeting = async (caCert: string) => {
    try {
      const conn = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: carrier.tlsPort!,
        caCerts: [caCert],
      });
      try {
        const buf = new Uint8Array(512);
        const n = await conn.read(buf);
        return new TextDecoder().decode(buf.subarray(0, n ?? 0));
      } finally {
        conn.close();
      }
    } catch {
      return "";
    }
  };
  try {
    ok((await greeting(first.caCert)).startsWith("220 "));
    await Deno.copyFile(second.certPath, cert);
    await Deno.copyFile(second.keyPath, key);
    carrier.child.kill("SIGHUP");
    await carrier.waitForLog(/ reloaded .*tls=yes/);
    ok((await greeting(second.caCert)).startsWith("220 "), "served with the new certificate");
    strictEqual(await greeting(first.caCert), "", "the old CA no longer verifies");
    // A bad certificate changes nothing.
    await Deno.writeTextFile(cert, "not a certificate");
    carrier.child.kill("SIGHUP");
    await carrier.waitForLog(/ reload failed; keeping the running configuration/);
    ok((await greeting(second.caCert)).startsWith("220 "), "still served after a failed reload");
  } finally {
    await carrier.stop();
  }
});

Deno.test("a certificate and a key that do not match: carrier refuses to start, naming them", async () => {
  const first = await makeTestPki();
  const second = await makeTestPki({ fresh: true });
  const result = await runCarrier([
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--spool",
    await Deno.makeTempDir({ prefix: "carrier-spool-" }),
    "--tls-cert",
    first.certPath,
    "--tls-key",
    second.keyPath,
  ]);
  strictEqual(result.code, 2);
  strictEqual(
    result.stderr.trim(),
    "carrier: tls-cert/tls-key: the private key does not belong to the certificate",
  );
});
