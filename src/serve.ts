/**
 * `carrier serve`: opens the spool, builds policy, TLS and AUTH from the config,
 * starts the listeners and the delivery worker, and handles signals (SIGINT and
 * SIGTERM stop gracefully, SIGHUP reloads the configuration (src/reload.ts), SIGUSR2 drains).
 */

import { ConfigError } from "./config/error.ts";
import type { Config } from "./config/schema.ts";
import { formatAddress } from "./config/units.ts";
import { errorMessage, Logger } from "./ops/log.ts";
import { Metrics } from "./ops/metrics.ts";
import { startMetricsServer } from "./ops/metrics_server.ts";
import { Readiness } from "./ops/readiness.ts";
import { VERSION } from "./version.ts";
import { UserAuthenticator } from "./policy/authenticator.ts";
import { policySettings, RelayPolicy } from "./policy/relay_policy.ts";
import { Spool } from "./queue/spool.ts";
import { createDeliveryWorker } from "./relay/worker_setup.ts";
import { untilDrained } from "./server/drain.ts";
import { SmtpServer } from "./server/server.ts";
import { prepare, Reloader } from "./reload.ts";
import { resolveUpstreams } from "./config/upstreams.ts";

/**
 * Runs the server until a stop signal; returns the exit code. `reloadConfig` builds the
 * configuration again as `config` was built (the config file re-read) for SIGHUP.
 */
export async function runServe(
  config: Config,
  reloadConfig: () => Promise<Config> = () => Promise.resolve(config),
): Promise<number> {
  const log = new Logger(config.logFormat);
  log.level = config.logLevel;
  // Label values as the operator wrote the URLs (they never carry a password).
  const names = resolveUpstreams(config).upstreams.map((u) => u.name);
  const metrics = new Metrics(VERSION, names.length > 0 ? names : ["none"]);
  const { networks, tls, users } = await prepare(config);
  const authenticator = users ? new UserAuthenticator(users) : undefined;

  const spool = await Spool.open(config.spool);
  // One server per spool: two would deliver every message twice.
  let lock = await spool.tryLock();
  // A `queue delete` holds the lock for a moment when no server runs: wait that out.
  for (let i = 0; i < 10 && !lock; i++) {
    await new Promise((r) => setTimeout(r, 200));
    lock = await spool.tryLock();
  }
  if (!lock) {
    throw new ConfigError(`spool: ${config.spool} is in use by another carrier process`);
  }
  const recovered = await spool.recover();
  if (recovered.removedTmp > 0) {
    log.info("spool recovered", { removedUnacknowledged: recovered.removedTmp });
  }
  if (recovered.removedStale > 0) {
    log.warn("spool: removed message files that no record names (never acknowledged)", {
      count: recovered.removedStale,
    });
  }
  if (recovered.removedBroken > 0) {
    log.error("spool: removed records whose message file was gone", {
      count: recovered.removedBroken,
    });
  }
  const worker = await createDeliveryWorker(config, spool, log, metrics);
  const policy = new RelayPolicy({
    ...policySettings(config, networks, authenticator !== undefined),
    log,
    metrics,
  });
  const server = new SmtpServer({
    config,
    spool,
    log,
    metrics,
    policy,
    authenticator,
    tls,
    onQueued: (record, bytes) => worker.notify(record, bytes),
  });
  server.start();
  let listening = true;
  const readiness = new Readiness({
    probeDir: spool.tmpDir,
    listening: () => listening,
    upstreamFailingSince: () => worker.upstreamPause.failingSince,
    maxUpstreamOutageMs: config.readyUpstreamOutage * 1000,
  });
  const metricsServer = config.metricsListen
    ? startMetricsServer(config.metricsListen, metrics, {
      queueSize: () => worker.queueSize,
      readiness,
      queueCounts: (now) => worker.queueCounts(now),
      pause: worker.upstreamPause,
    }, log)
    : undefined;
  const reloader = new Reloader(
    config,
    { log, metrics, server, policy, worker, readiness, authenticator },
    reloadConfig,
  );
  // Reloads run one at a time: two SIGHUPs in a row never interleave. Listening before
  // "started" is logged, so a SIGHUP sent on seeing it is never lost.
  let reloading = Promise.resolve();
  const onHup = () => {
    reloading = reloading.then(() => reloader.reload());
  };
  Deno.addSignalListener("SIGHUP", onHup);
  // So are the stop signals: a SIGTERM right after "started" stops the server cleanly.
  const stopped = new Promise<string>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
  const drain = new Promise<string>((resolve) => {
    Deno.addSignalListener("SIGUSR2", () => resolve("SIGUSR2"));
  });
  log.info("started", {
    hostname: config.hostname,
    spool: config.spool,
    relayNetworks: networks.toString(),
    proxyProtocolFrom: config.proxyProtocolFrom || undefined,
    auth: users ? `${users.size} users` : "off",
    upstream: worker.describe(),
  });
  if (names.length === 0) {
    log.warn(
      "hold mode: no upstream configured; accepted mail is kept in the spool until one is set",
    );
  }
  await worker.start();
  // Spare message files are made while serving, so a burst of mail finds them ready.
  const prepareStop = new AbortController();
  const preparing = spool.prepareFiles(prepareStop.signal).catch((e) =>
    log.error("spool: cannot prepare spare message files", { error: errorMessage(e) })
  );

  let signal = await Promise.race([stopped, drain]);
  const graceMs = reloader.config.shutdownTimeout * 1000;
  if (signal === "SIGUSR2") {
    // Drain: no new mail (the balancer moves on), the queue empties, then a normal stop.
    log.info("draining", { queue: worker.queueSize });
    await server.stop(graceMs);
    const outcome = await untilDrained(() => worker.queueSize, stopped);
    if (outcome === "drained") log.info("drained", { queue: 0 });
    else signal = await stopped;
  }
  log.info("stopping", { signal, graceSeconds: reloader.config.shutdownTimeout });
  listening = false;
  prepareStop.abort();
  await Promise.all([server.stop(graceMs), worker.stop(graceMs), preparing]);
  await metricsServer?.shutdown();
  Deno.removeSignalListener("SIGHUP", onHup);
  await reloading;
  spool.close();
  lock.close();
  log.info("stopped", {
    addresses: server.addresses.map((a) => formatAddress(a.address)).join(",") || undefined,
  });
  return 0;
}
