/**
 * Implicit TLS behind a balancer: the PROXY header comes before the TLS handshake
 * (as HAProxy sends it), the handshake that follows it (even in the same packet)
 * succeeds, and the header's address is the client.
 */

import { ok, strictEqual } from "node:assert/strict";
import { python, queueFiles, startCarrier } from "../support/carrier.ts";
import { proxyV2 } from "../support/proxy_header.ts";
import { tlsArgs } from "../support/security.ts";
import { makeTestPki } from "../support/tls.ts";

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

const CLIENT = `
import smtplib, socket, ssl, sys
port, ca, header = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
raw.sendall(header)
tls = ctx.wrap_socket(raw, server_hostname="localhost")
s = smtplib.SMTP()
s.sock = tls
print(s.getreply()[0], tls.version())
s.ehlo("tls.test")
s.mail("cron@client.test")
code, _ = s.rcpt("ops@example.com")
print(code)
if code == 250:
    print(s.data(b"Subject: tls\\r\\n\\r\\nhello\\r\\n")[0])
s.quit()
`;

/** Header and ClientHello in one write, so the server finds the handshake's start after the header. */
const ONE_WRITE = `
import socket, ssl, sys
port, ca, header = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
sock = socket.create_connection(("127.0.0.1", port), timeout=20)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
first = True
for _ in range(50):
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        pending = out.read()
        sock.sendall(header + pending if first else pending)
        first = False
        data = sock.recv(65536)
        if not data:
            sys.exit("closed during the handshake")
        inc.write(data)
sock.sendall(out.read())
greeting = b""
while not greeting.endswith(b"\\r\\n"):
    try:
        greeting += tls.read(4096)
    except ssl.SSLWantReadError:
        inc.write(sock.recv(65536))
print(greeting.decode().split(" ")[0], tls.version())
`;

Deno.test("PROXY header before implicit TLS: handshake after it, header's client decides relay", async () => {
  const pki = await makeTestPki();
  // A plain listener on a free port too: without one the default 127.0.0.1:2525 would be taken.
  const carrier = await startCarrier({
    args: [
      ...tlsArgs(pki),
      "--listen-tls",
      "127.0.0.1:0",
      "--proxy-protocol-from",
      "127.0.0.1/32",
      "--relay-networks",
      "127.0.0.3/32",
    ],
  });
  try {
    const inside = proxyV2({ src: { address: "127.0.0.3", port: 1234 } });
    const sent = await python(CLIENT, [String(carrier.tlsPort), pki.caCertPath, hex(inside)]);
    strictEqual(sent.code, 0, sent.stderr);
    ok(/^220 TLSv1\.[23]\n250\n250\n$/.test(sent.stdout), sent.stdout);
    const outside = proxyV2({ src: { address: "198.51.100.1", port: 1 } });
    const denied = await python(CLIENT, [String(carrier.tlsPort), pki.caCertPath, hex(outside)]);
    strictEqual(denied.code, 0, denied.stderr);
    ok(/^220 TLSv1\.[23]\n554\n$/.test(denied.stdout), denied.stdout);
    await carrier.waitForLog(/relay denied client=198\.51\.100\.1/);
    const together = await python(ONE_WRITE, [
      String(carrier.tlsPort),
      pki.caCertPath,
      hex(inside),
    ]);
    strictEqual(together.code, 0, together.stderr);
    ok(/^220 TLSv1\.[23]\n$/.test(together.stdout), together.stdout);
    const msgs = (await queueFiles(carrier.spool)).filter((n) => n.endsWith(".msg"));
    strictEqual(msgs.length, 1);
    const stored = await Deno.readTextFile(`${carrier.spool}/queue/${msgs[0]}`);
    ok(stored.includes("Received: from tls.test ([127.0.0.3])"), stored.slice(0, 400));
  } finally {
    await carrier.stop();
  }
});
