/**
 * Tests of the server transports over a real loopback TCP pair: plain `ConnTransport`, and
 * server-side STARTTLS through node:tls against a real Deno TLS client with the test PKI.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createSecureContext } from "node:tls";
import { withTimeout } from "../../src/deadline.ts";
import { ConnTransport, type Transport } from "../../src/server/transport.ts";
import { makeTestPki } from "../support/tls.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connected loopback pair: the server side wrapped in a ConnTransport. */
async function withPair(
  fn: (server: ConnTransport, client: Deno.TcpConn) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let client: Deno.TcpConn | undefined;
  let server: ConnTransport | undefined;
  try {
    const accepted = listener.accept();
    client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    server = new ConnTransport(await accepted);
    await fn(server, client);
  } finally {
    server?.close();
    try {
      client?.close();
    } catch { /* already closed by the test */ }
    listener.close();
  }
}

/** Every wait on the peer is bounded: a broken transport fails the test, never hangs it. */
const BOUND_MS = 10_000;

/** Reads from a transport until `length` bytes arrived. */
function readTransport(t: Transport, length: number): Promise<Uint8Array> {
  return withTimeout(readTransportUnbounded(t, length), BOUND_MS);
}

async function readTransportUnbounded(t: Transport, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let used = 0;
  while (used < length) {
    const chunk = await t.read();
    if (chunk === null) throw new Error(`end of input after ${used}/${length} bytes`);
    out.set(chunk, used);
    used += chunk.length;
  }
  return out;
}

/** Reads from a Deno connection until `length` bytes arrived. */
function readConn(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  return withTimeout(readConnUnbounded(conn, length), BOUND_MS);
}

async function readConnUnbounded(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let used = 0;
  while (used < length) {
    const n = await conn.read(out.subarray(used));
    if (n === null) throw new Error(`end of input after ${used}/${length} bytes`);
    used += n;
  }
  return out;
}

async function writeConn(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads until end of input or an error; true when the peer closed. */
function closedByPeer(conn: Deno.Conn): Promise<boolean> {
  return withTimeout(closedByPeerUnbounded(conn), BOUND_MS);
}

async function closedByPeerUnbounded(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(1024);
  for (let i = 0; i < 1000; i++) {
    try {
      if (await conn.read(buf) === null) return true;
    } catch {
      return true; // reset
    }
  }
  return false;
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

Deno.test("ConnTransport: plain bytes both ways, end of input, close twice", async () => {
  await withPair(async (server, client) => {
    strictEqual(server.tlsProtocol, undefined);
    await writeConn(client, enc.encode("EHLO client\r\n"));
    strictEqual(dec.decode(await readTransport(server, 13)), "EHLO client\r\n");
    await server.write(enc.encode("250 ok\r\n"));
    strictEqual(dec.decode(await readConn(client, 8)), "250 ok\r\n");
    await client.closeWrite();
    strictEqual(await server.read(), null);
    server.close();
    server.close(); // harmless
    ok(await closedByPeer(client));
  });
});

Deno.test("ConnTransport.startTls: handshake with a Deno TLS client, bytes round-trip", async () => {
  const pki = await makeTestPki();
  await withPair(async (server, client) => {
    // The STARTTLS exchange in plaintext first, as a session does it.
    await writeConn(client, enc.encode("STARTTLS\r\n"));
    strictEqual(dec.decode(await readTransport(server, 10)), "STARTTLS\r\n");
    const ready = enc.encode("220 2.0.0 Ready to start TLS\r\n");
    await server.write(ready);
    deepStrictEqual(await readConn(client, ready.length), ready);

    const context = createSecureContext({ cert: pki.cert, key: pki.key, minVersion: "TLSv1.2" });
    const [secure, tlsClient] = await Promise.all([
      server.startTls(context, 5000),
      withTimeout(
        Deno.startTls(client, { hostname: "localhost", caCerts: [pki.caCert] }),
        BOUND_MS,
      ),
    ]);
    try {
      ok(/^TLSv1\.[23]$/.test(secure.tlsProtocol ?? ""), secure.tlsProtocol);
      const info = await withTimeout(tlsClient.handshake(), BOUND_MS);
      ok(info.alpnProtocol === null);

      await writeConn(tlsClient, enc.encode("EHLO secure\r\n"));
      strictEqual(dec.decode(await readTransport(secure, 13)), "EHLO secure\r\n");
      await secure.write(enc.encode("250 secure\r\n"));
      strictEqual(dec.decode(await readConn(tlsClient, 12)), "250 secure\r\n");

      // Larger transfers, both ways at once (the writes need the peer to read).
      const up = pattern(200_000, 1);
      const down = pattern(300_000, 7);
      const [gotUp, , gotDown] = await Promise.all([
        readTransport(secure, up.length),
        withTimeout(writeConn(tlsClient, up), BOUND_MS),
        readConn(tlsClient, down.length),
        withTimeout(secure.write(down), BOUND_MS),
      ]);
      deepStrictEqual(gotUp, up);
      deepStrictEqual(gotDown, down);

      // No second STARTTLS on a secure transport.
      await rejects(secure.startTls(context, 1000), /already using TLS/);

      // Closing the secure transport closes the connection under it.
      secure.close();
      ok(await closedByPeer(tlsClient));
    } finally {
      secure.close();
      tlsClient.close();
    }
  });
});

Deno.test("ConnTransport.startTls: a client that never starts TLS times out", async () => {
  const pki = await makeTestPki();
  await withPair(async (server, client) => {
    const context = createSecureContext({ cert: pki.cert, key: pki.key });
    await rejects(server.startTls(context, 300), /TLS handshake timed out/);
    // The connection is closed, not left open for the client to hold.
    ok(await closedByPeer(client));
  });
});

Deno.test("ConnTransport.startTls: plaintext instead of a TLS handshake is refused", async () => {
  const pki = await makeTestPki();
  await withPair(async (server, client) => {
    const context = createSecureContext({ cert: pki.cert, key: pki.key });
    const handshake = server.startTls(context, 5000);
    await writeConn(client, enc.encode("MAIL FROM:<smuggled@example.com>\r\n".repeat(4)));
    await rejects(handshake, (e: unknown) => {
      ok(e instanceof Error);
      ok(!/timed out/.test(e.message), e.message);
      return true;
    });
    ok(await closedByPeer(client));
  });
});
