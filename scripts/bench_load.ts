/**
 * `deno task bench`: a load run on loopback. N concurrent Python smtplib clients
 * send 1 KiB messages to (1) Carrier in hold mode (accept + fsync into the spool),
 * (2) a peer measured in the same run: nodemailer's smtp-server as an in-memory
 * sink (no disk), and (3) Carrier relaying through a STARTTLS+AUTH smarthost, timed
 * until the last message arrives upstream. Prints messages/s, ratios and Carrier's
 * peak memory (VmHWM). Bounded: fixed message counts, loopback only.
 *
 *   deno task bench [--clients 20] [--messages 50]
 */

import { parseArgs } from "node:util";
import { SMTPServer } from "smtp-server";
import { python, startCarrier } from "../tests/support/carrier.ts";
import { startSmarthost } from "../tests/support/smarthost.ts";
import { makeTestPki } from "../tests/support/tls.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "20" },
    messages: { type: "string", default: "50" },
  },
});
const clients = Number(values.clients);
const perClient = Number(values.messages);
const total = clients * perClient;

const LOAD = `
import smtplib, sys, threading, time
port, clients, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = ("Subject: bench\\r\\n\\r\\n" + ("x" * 78 + "\\r\\n") * 12).encode()
errors = []
def run(n):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
            for m in range(per):
                s.sendmail("bench%d@example.org" % n, ["sink@example.com"], body)
    except Exception as e:
        errors.append(repr(e))
start = time.monotonic()
threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
[t.start() for t in threads]; [t.join() for t in threads]
print("%.4f %d %d" % (time.monotonic() - start, len(errors), len(body)))
`;

async function load(port: number): Promise<{ seconds: number; errors: number; size: number }> {
  const out = await python(LOAD, [String(port), String(clients), String(perClient)], 600_000);
  if (out.code !== 0) throw new Error(out.stderr);
  const [seconds, errors, size] = out.stdout.trim().split(" ").map(Number);
  return { seconds, errors, size };
}

async function peakMemoryKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const rate = (n: number, s: number) => (n / s).toFixed(0);

// 1. Carrier, accept into the spool.
const carrier = await startCarrier({
  args: ["--max-connections-per-client", String(clients + 10)],
});
const accept = await load(carrier.port);
const acceptMemory = await peakMemoryKiB(carrier.child.pid);
await carrier.stop();
await Deno.remove(carrier.spool, { recursive: true });

// 2. Peer: smtp-server as an in-memory sink.
let sunk = 0;
const sink = new SMTPServer({
  authOptional: true,
  disableReverseLookup: true,
  hideSTARTTLS: true,
  logger: false,
  onData(stream, _session, callback) {
    stream.on("data", () => {});
    stream.on("end", () => {
      sunk++;
      callback();
    });
  },
});
const sinkPort = await new Promise<number>((resolve) => {
  const server = sink.listen(
    0,
    "127.0.0.1",
    () => resolve((server.address() as { port: number }).port),
  );
});
const peer = await load(sinkPort);
await new Promise<void>((resolve) => sink.close(() => resolve()));

// 3. Carrier relaying through a STARTTLS+AUTH smarthost, end to end.
const pki = await makeTestPki();
const smarthost = await startSmarthost({ pki, users: { bench: "bench-pw" } });
const relay = await startCarrier({
  args: [
    "--max-connections-per-client",
    String(clients + 10),
    "--upstream",
    `starttls://bench@127.0.0.1:${smarthost.port}`,
    "--upstream-ca",
    pki.caCertPath,
    "--upstream-servername",
    "localhost",
  ],
  env: { CARRIER_UPSTREAM_PASSWORD: "bench-pw" },
});
const started = performance.now();
const relayLoad = await load(relay.port);
await smarthost.waitFor(total, 600_000);
const relaySeconds = (performance.now() - started) / 1000;
const relayMemory = await peakMemoryKiB(relay.child.pid);
await relay.stop();
await smarthost.close();
await Deno.remove(relay.spool, { recursive: true });

// 4. Streaming: peak memory after a 1 MB message, then after a 100 MB one.
const streaming = await startCarrier({ args: ["--max-message-size", "200M"] });
const SEND_ONE = `
import smtplib, sys
body = b"Subject: big\\r\\n\\r\\n" + (b"x" * 998 + b"\\r\\n") * int(sys.argv[2])
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=300) as s:
    s.sendmail("a@example.org", ["b@example.com"], body)
`;
await python(SEND_ONE, [String(streaming.port), "1000"]);
const afterSmall = await peakMemoryKiB(streaming.child.pid);
await python(SEND_ONE, [String(streaming.port), "100000"]);
const afterBig = await peakMemoryKiB(streaming.child.pid);
await streaming.stop();
await Deno.remove(streaming.spool, { recursive: true });

console.log(
  `load: ${clients} concurrent smtplib clients x ${perClient} messages of ${accept.size} bytes = ${total}`,
);
console.log(
  `carrier accept (fsync to spool): ${accept.seconds.toFixed(2)} s, ${
    rate(total, accept.seconds)
  } msg/s, ` +
    `errors ${accept.errors}, peak RSS ${(acceptMemory / 1024).toFixed(1)} MiB`,
);
console.log(
  `peer smtp-server (in-memory sink, no disk): ${peer.seconds.toFixed(2)} s, ${
    rate(sunk, peer.seconds)
  } msg/s, ` +
    `errors ${peer.errors}`,
);
console.log(`ratio carrier/peer: ${(peer.seconds / accept.seconds).toFixed(2)}`);
console.log(
  `carrier relay end to end (accept + STARTTLS/AUTH upstream): ${relaySeconds.toFixed(2)} s, ` +
    `${rate(total, relaySeconds)} msg/s (clients done after ${relayLoad.seconds.toFixed(2)} s), ` +
    `errors ${relayLoad.errors}, peak RSS ${(relayMemory / 1024).toFixed(1)} MiB`,
);
console.log(
  `streaming: peak RSS ${(afterSmall / 1024).toFixed(1)} MiB after a 1 MB message, ` +
    `${(afterBig / 1024).toFixed(1)} MiB after a 100 MB one`,
);
