/**
 * Scale-out behind a real HAProxy (Debian package `haproxy`, installed by
 * scripts/test.sh): two Carrier instances with their own spools, round robin, PROXY
 * v2 and v1. HAProxy connects from 127.0.0.1, which may not relay; clients bind
 * 127.0.0.3 (may relay) and 127.0.0.2 (may not), so every outcome below holds only
 * if Carrier uses the header's address.
 */

import { ok, strictEqual } from "node:assert/strict";
import {
  type CarrierProcess,
  freePort,
  python,
  queueFiles,
  startCarrier,
} from "../support/carrier.ts";

const haproxy = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** Sends `count` messages through host:port from `source`; prints one line of codes per message. */
const SEND = `
import smtplib, sys
port, source, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(count):
    s = smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=20)
    s.ehlo("client.test")
    s.mail("cron@client.test")
    code, _ = s.rcpt("ops@example.com")
    if code == 250:
        code2, _ = s.data(b"Subject: m%d\\r\\n\\r\\nbody %d\\r\\n" % (i, i))
        print(code, code2)
    else:
        print(code)
    s.quit()
`;

async function startHaproxy(backends: number[]): Promise<
  { v2: number; v1: number; stop: () => Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-haproxy-" });
  const v2 = freePort();
  const v1 = freePort();
  const servers = (send: string) =>
    backends.map((p, i) => `  server c${i} 127.0.0.1:${p} ${send}`).join("\n");
  await Deno.writeTextFile(
    `${dir}/haproxy.cfg`,
    `global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend smtp_v2
  bind 127.0.0.1:${v2}
  default_backend carriers_v2
frontend smtp_v1
  bind 127.0.0.1:${v1}
  default_backend carriers_v1
backend carriers_v2
  balance roundrobin
${servers("send-proxy-v2")}
backend carriers_v1
  balance roundrobin
${servers("send-proxy")}
`,
  );
  const child = new Deno.Command(haproxy!, {
    args: ["-db", "-f", `${dir}/haproxy.cfg`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  let errors = "";
  const pump = (async () => {
    for await (const t of stderr) errors += t;
  })();
  // Ready once both frontends accept (bounded).
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: v2 })).close();
      (await Deno.connect({ hostname: "127.0.0.1", port: v1 })).close();
      break;
    } catch (e) {
      if (i >= 100) throw new Error(`haproxy did not start: ${e}\n${errors}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    v2,
    v1,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await pump;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const messages = async (c: CarrierProcess) =>
  (await queueFiles(c.spool)).filter((n) => n.endsWith(".msg"));

Deno.test({
  name:
    "HAProxy with send-proxy-v2 and send-proxy in front of two instances: both queue, the header's client decides relay",
  ignore: haproxy === undefined,
  async fn() {
    const args = ["--proxy-protocol-from", "127.0.0.1/32", "--relay-networks", "127.0.0.3/32"];
    const a = await startCarrier({ args });
    const b = await startCarrier({ args });
    const front = await startHaproxy([a.port, b.port]);
    try {
      const v2 = await python(SEND, [String(front.v2), "127.0.0.3", "4"]);
      strictEqual(v2.code, 0, v2.stderr);
      strictEqual(v2.stdout, "250 250\n".repeat(4));
      const v1 = await python(SEND, [String(front.v1), "127.0.0.3", "2"]);
      strictEqual(v1.code, 0, v1.stderr);
      strictEqual(v1.stdout, "250 250\n".repeat(2));
      const denied = await python(SEND, [String(front.v2), "127.0.0.2", "2"]);
      strictEqual(denied.code, 0, denied.stderr);
      strictEqual(denied.stdout, "554\n554\n");

      // Round robin: each instance queued half, in its own spool.
      strictEqual((await messages(a)).length, 3);
      strictEqual((await messages(b)).length, 3);
      for (const c of [a, b]) {
        for (const name of await messages(c)) {
          const stored = await Deno.readTextFile(`${c.spool}/queue/${name}`);
          ok(stored.includes("Received: from client.test ([127.0.0.3])"), stored.slice(0, 400));
        }
        const logs = c.logs();
        ok(/proxy conn=\S+ peer=127\.0\.0\.1 client=127\.0\.0\.3 version=2/.test(logs), logs);
        ok(/proxy conn=\S+ peer=127\.0\.0\.1 client=127\.0\.0\.3 version=1/.test(logs), logs);
        ok(/relay denied client=127\.0\.0\.2 /.test(logs), logs);
        ok(!/relay denied client=127\.0\.0\.1 /.test(logs), logs);
      }
    } finally {
      await front.stop();
      await a.stop();
      await b.stop();
    }
  },
});

if (haproxy === undefined) {
  console.warn(
    "haproxy_test: skipped, haproxy is not installed (bash scripts/test.sh installs it)",
  );
}
