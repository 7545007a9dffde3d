/**
 * Runs the real Carrier server as a subprocess with exactly the permission flags
 * the dev task and the compiled binary use (src/permissions.ts), and reads the
 * bound ports and events from its log.
 */

import { runArguments } from "../../src/permissions.ts";

/** A running Carrier subprocess. */
export interface CarrierProcess {
  /** Port of the first plain listener. */
  port: number;
  /** Port of the first implicit-TLS listener, if any. */
  tlsPort?: number;
  spool: string;
  /** Everything logged to stderr so far. */
  logs(): string;
  /** Resolves with the first log line matching `pattern` (bounded wait). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** The process, for SIGKILL tests. */
  child: Deno.ChildProcess;
}

/** Options for one Carrier process. */
export interface CarrierOptions {
  /** Extra command-line arguments for `serve`. */
  args?: string[];
  /** Spool directory (a fresh temp dir by default). */
  spool?: string;
  env?: Record<string, string>;
  /** Listen on a plain port (default true; port 0 = any free port). */
  plain?: boolean;
}

/** Starts `carrier serve` on 127.0.0.1 with a free port and waits until it listens. */
export async function startCarrier(opts: CarrierOptions = {}): Promise<CarrierProcess> {
  const spool = opts.spool ?? await Deno.makeTempDir({ prefix: "carrier-spool-" });
  const args = [
    "serve",
    "--spool",
    spool,
    "--hostname",
    "carrier.test",
    ...(opts.plain === false ? [] : ["--listen", "127.0.0.1:0"]),
    ...(opts.args ?? []),
  ];
  const child = await spawnCarrier(args, opts.env ?? {}, false);
  let log = "";
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      log += text;
      for (const w of [...waiters]) {
        const line = log.split("\n").find((l) => w.pattern.test(l));
        if (line !== undefined) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  const pumps = Promise.all([pump(child.stderr), pump(child.stdout)]);
  const waitForLog = (pattern: RegExp, timeoutMs = 15_000) =>
    new Promise<string>((resolve, reject) => {
      const line = log.split("\n").find((l) => pattern.test(l));
      if (line !== undefined) return resolve(line);
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; log:\n${log}`));
      }, timeoutMs);
      const waiter = {
        pattern,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(waiter);
    });
  let exited: Promise<number> | undefined;
  const status = () =>
    exited ??= child.status.then(async (s) => {
      await pumps;
      return s.code;
    });
  try {
    await Promise.race([
      waitForLog(/ started |"event":"started"/),
      status().then((code) => {
        throw new Error(`carrier exited with ${code} before starting:\n${log}`);
      }),
    ]);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await status();
    throw e;
  }
  // Text or JSON lines (--log-format json).
  const ports = [
    ...log.matchAll(/listening address=\S+:(\d+) tls=(\S+)/g),
    ...log.matchAll(/"event":"listening","address":"[^"]+:(\d+)","tls":"([^"]+)"/g),
  ];
  const plain = ports.find((m) => m[2] !== "implicit");
  const tls = ports.find((m) => m[2] === "implicit");
  return {
    port: plain ? Number(plain[1]) : 0,
    tlsPort: tls ? Number(tls[1]) : undefined,
    spool,
    logs: () => log,
    waitForLog,
    child,
    stop: async (signal: Deno.Signal = "SIGTERM") => {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      return await status();
    },
  };
}

/** Spawns `carrier ARGS` from source with the permissions derived from ARGS and `env` only. */
async function spawnCarrier(
  args: string[],
  env: Record<string, string>,
  stdin: boolean,
): Promise<Deno.ChildProcess> {
  const runArgs = await runArguments(args, (name) => env[name]);
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...runArgs],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs `carrier ARGS` (any command) with its derived permissions; returns exit code and output. */
export async function runCarrier(
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = await spawnCarrier(args, opts.env ?? {}, opts.stdin !== undefined);
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Queue files (`.msg` and `.json`) in a spool, sorted. */
export async function queueFiles(spool: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${spool}/queue`)) names.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names.sort();
}

/** Runs a Python program (smtplib and friends) with arguments; returns its output. */
export async function python(
  code: string,
  args: string[] = [],
  timeoutMs = 120_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("python3", {
    args: ["-c", code, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs swaks with arguments; returns its output. */
export async function swaks(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("swaks", {
    args: ["--hide-informational", ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

/** A loopback port with nothing listening on it (reserved, then released). */
export function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}
