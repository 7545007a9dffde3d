/**
 * A private Postfix instance for the benchmark: its own config and queue
 * directories under a temp dir (never the machine's mail setup), listening on
 * one loopback port and relaying everything to a loopback smarthost.
 * Installed from Debian's `postfix` package when missing.
 */

import { join } from "node:path";

/** Runs a command; throws with its output when it fails. */
export async function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${text.trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Installs Postfix (and its smtp-source/smtp-sink) from Debian when missing. */
export async function ensurePostfix(): Promise<void> {
  if (await exists("/usr/sbin/postfix") && await exists("/usr/sbin/smtp-source")) return;
  console.error("installing postfix from Debian packages (no mail configuration is made)");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("sh", [
    "-c",
    "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections",
  ]);
  await run("apt-get", ["update", "-qq"], env);
  await run("apt-get", ["install", "-y", "-qq", "postfix"], env);
}

/** One started instance. */
export interface PostfixInstance {
  port: number;
  /** The master daemon: every Postfix process is in its tree. */
  masterPid(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts Postfix on 127.0.0.1:`port`, relaying to 127.0.0.1:`relayPort`; queue on disk. */
export async function startPostfix(
  dir: string,
  port: number,
  relayPort: number,
  prefix: string[] = [],
): Promise<PostfixInstance> {
  const etc = join(dir, "etc");
  const queue = join(dir, "queue");
  const data = join(dir, "data");
  await Deno.mkdir(etc, { recursive: true });
  await Deno.mkdir(data, { recursive: true });
  await Deno.mkdir(queue, { recursive: true });
  await run("chown", ["postfix", data]);
  const main = [
    "compatibility_level = 3.6",
    `queue_directory = ${queue}`,
    `data_directory = ${data}`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "myhostname = postfix.bench.invalid",
    "mydestination =",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    "mynetworks = 127.0.0.0/8",
    "smtpd_relay_restrictions = permit_mynetworks, reject",
    `relayhost = [127.0.0.1]:${relayPort}`,
    "smtp_tls_security_level = none",
    "smtpd_tls_security_level = none",
    "smtpd_client_connection_rate_limit = 0",
    "smtpd_client_connection_count_limit = 0",
    "default_process_limit = 100",
    `maillog_file = ${join(dir, "maillog")}`,
    `maillog_file_prefixes = ${dir}`,
    "biff = no",
    "append_dot_mydomain = no",
    "alias_maps =",
    "alias_database =",
    "local_recipient_maps =",
    "smtputf8_enable = no",
    "",
  ].join("\n");
  await Deno.writeTextFile(join(etc, "main.cf"), main);
  const master = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
    "",
  ].join("\n");
  await Deno.writeTextFile(join(etc, "master.cf"), master);
  const env = { MAIL_CONFIG: etc };
  await run("postfix", ["-c", etc, "set-permissions"], env).catch(() => {});
  if (prefix.length === 0) await run("postfix", ["-c", etc, "start"], env);
  else {
    // Traced (strace -f): the tracer follows the master it daemonizes and its children.
    new Deno.Command(prefix[0], {
      args: [...prefix.slice(1), "postfix", "-c", etc, "start"],
      env,
      stdout: "null",
      stderr: "null",
    }).spawn();
  }
  const pidFile = join(queue, "pid", "master.pid");
  const masterPid = async () => {
    for (let i = 0; i < 100; i++) {
      try {
        const pid = Number((await Deno.readTextFile(pidFile)).trim());
        if (pid > 0) return pid;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("postfix master did not write its pid");
  };
  await masterPid();
  await waitForPort(port);
  return {
    port,
    masterPid,
    async stop() {
      await run("postfix", ["-c", etc, "stop"], env).catch(() => {});
      // `stop` returns before the daemons are gone: wait for the master to exit.
      const pid = await masterPid().catch(() => 0);
      for (let i = 0; pid && i < 100 && await exists(`/proc/${pid}`); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (bounded). */
export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}
