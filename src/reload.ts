/**
 * SIGHUP: the configuration is built again (the config file re-read, the flags and the
 * environment as they were at start), checked whole (certificate, users file, upstream
 * credentials), and only then taken live: the server and the relay policy for new
 * connections, the delivery worker, the log. What needs new sockets or permissions is
 * left as it is and named in one warning; a reload that fails changes nothing.
 */

import { ConfigError } from "./config/error.ts";
import type { Config } from "./config/schema.ts";
import { snakeKey } from "./config/toml.ts";
import { errorMessage, type Logger } from "./ops/log.ts";
import type { Metrics } from "./ops/metrics.ts";
import type { Readiness } from "./ops/readiness.ts";
import { UserAuthenticator } from "./policy/authenticator.ts";
import { NetworkList } from "./policy/networks.ts";
import { policySettings, type RelayPolicy } from "./policy/relay_policy.ts";
import { UserDb } from "./policy/users.ts";
import { deliverySettings } from "./relay/worker_setup.ts";
import type { DeliveryWorker } from "./relay/worker.ts";
import { checkTlsMaterial, type SmtpServer, type TlsMaterial } from "./server/server.ts";
import { parseUpstreamUrl, upstreamNetTarget } from "./upstream_url.ts";
import { resolveUpstreams } from "./config/upstreams.ts";
import { type Grants, PROCESS_GRANTS } from "./granted.ts";
import { resolve } from "node:path";

/** What changed between two configurations, as snake_case key names. */
export interface ConfigChanges {
  /** Taken by the running server. */
  live: string[];
  /** Left as they are until a restart. */
  restart: string[];
}

/** Keys bound to sockets or directories opened at start. */
const RESTART_KEYS: readonly (keyof Config)[] = [
  "listen",
  "listenTls",
  "spool",
  "hostname",
  "metricsListen",
];

/** The upstream and what belongs to it: kept together when the upstream cannot change. */
const UPSTREAM_KEYS: readonly (keyof Config)[] = [
  "upstream",
  "upstreamPasswordFile",
  "upstreamCa",
  "upstreamServername",
  "upstreams",
  "routes",
];

/**
 * Compares the running configuration with a new one. `grants` says whether the process may
 * reach an upstream's `host:port`, read its password file or CA, and read its variables
 * (by default, those it reads now); what it may not needs a restart.
 */
export function compareConfigs(
  running: Config,
  next: Config,
  grants: Grants = {},
): ConfigChanges {
  const keys = [...new Set([...Object.keys(running), ...Object.keys(next)])] as (keyof Config)[];
  const changed = keys.filter((k) =>
    k !== "configFile" && JSON.stringify(running[k]) !== JSON.stringify(next[k])
  );
  const restart = new Set(changed.filter((k) => RESTART_KEYS.includes(k)));
  const upstreamChanged = UPSTREAM_KEYS.some((k) => changed.includes(k));
  if (upstreamChanged) {
    const before = resolveUpstreams(running).upstreams;
    const after = resolveUpstreams(next).upstreams;
    const holdSwitch = (before.length === 0) !== (after.length === 0);
    const netOk = grants.net ?? (() => true);
    const outside = after.some((u) => !netOk(upstreamNetTarget(parseUpstreamUrl(u.url))));
    // A new upstream's password variable or file may be outside --allow-env or --allow-read.
    const known = new Set(before.map((u) => u.passwordVariable));
    const envOk = grants.env ?? ((name: string) => known.has(name));
    const readOk = grants.read ?? (() => true);
    const needs = (u: (typeof after)[number]): string[] =>
      u.oauth2 && u.name !== u.url // a named upstream with oauth2 = true reads only these
        ? Object.values(u.oauth2)
        : !u.passwordFile && parseUpstreamUrl(u.url).user !== undefined
        ? [u.passwordVariable]
        : [];
    const newVariables = after.some((u) => needs(u).some((name) => !envOk(name)));
    const unreadable = after.some((u) =>
      [u.passwordFile, u.ca].some((f) => f !== undefined && !readOk(resolve(f)))
    );
    if (holdSwitch || outside || newVariables || unreadable) {
      for (const k of UPSTREAM_KEYS) if (changed.includes(k)) restart.add(k);
    }
  }
  // Implicit-TLS listeners are opened one way with PROXY senders and another without.
  const proxied = (c: Config) => c.proxyProtocolFrom !== "";
  if (running.listenTls.length > 0) {
    if (proxied(running) !== proxied(next)) restart.add("proxyProtocolFrom");
    if (next.tlsCert === undefined) {
      for (const k of ["tlsCert", "tlsKey"] as const) if (changed.includes(k)) restart.add(k);
    }
  }
  return {
    live: changed.filter((k) => !restart.has(k)).map(snakeKey),
    restart: changed.filter((k) => restart.has(k)).map(snakeKey),
  };
}

/** `next` with the keys named in `restart` (snake_case) as they are in `running`. */
export function keepRunning(running: Config, next: Config, restart: string[]): Config {
  const kept: Record<string, unknown> = { ...next };
  for (const name of restart) {
    const key = (Object.keys({ ...running, ...next }) as (keyof Config)[])
      .find((k) => snakeKey(k) === name);
    if (key === undefined) continue;
    if (running[key] === undefined) delete kept[key];
    else kept[key] = running[key];
  }
  return kept as unknown as Config;
}

/** A configuration with the files it names read and checked. */
export interface Prepared {
  config: Config;
  networks: NetworkList;
  tls?: TlsMaterial;
  users?: UserDb;
}

/** Reads and checks what `config` names (networks, certificate, users); throws ConfigError. */
export async function prepare(config: Config): Promise<Prepared> {
  let networks: NetworkList;
  try {
    networks = NetworkList.parse(config.relayNetworks);
  } catch (e) {
    throw new ConfigError(`relay-networks: ${errorMessage(e)}`);
  }
  try {
    NetworkList.parse(config.proxyProtocolFrom);
  } catch (e) {
    throw new ConfigError(`proxy-protocol-from: ${errorMessage(e)}`);
  }
  const tls = config.tlsCert ? await readTls(config) : undefined;
  if (tls) {
    try {
      checkTlsMaterial(tls);
    } catch (e) {
      throw new ConfigError(`tls-cert/tls-key: ${errorMessage(e)}`);
    }
  }
  const users = config.users ? await loadUsers(config.users) : undefined;
  return { config, networks, tls, users };
}

async function readTls(config: Config): Promise<TlsMaterial> {
  const read = async (path: string, key: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new ConfigError(`${key}: cannot read ${path}: ${errorMessage(e)}`);
    }
  };
  return {
    cert: await read(config.tlsCert!, "tls-cert"),
    key: await read(config.tlsKey!, "tls-key"),
  };
}

async function loadUsers(path: string): Promise<UserDb> {
  try {
    return await UserDb.load(path);
  } catch (e) {
    throw new ConfigError(`users: ${errorMessage(e)}`);
  }
}

/** The running parts a reload reconfigures. */
export interface ReloadTargets {
  log: Logger;
  metrics: Metrics;
  server: SmtpServer;
  policy: RelayPolicy;
  worker: DeliveryWorker;
  readiness: Readiness;
  authenticator?: UserAuthenticator;
}

/** Holds the running configuration and replaces it on each reload that succeeds. */
export class Reloader {
  #running: Config;

  constructor(
    running: Config,
    readonly targets: ReloadTargets,
    readonly rebuild: () => Promise<Config>,
    readonly grants: Grants = PROCESS_GRANTS,
  ) {
    this.#running = running;
  }

  /** The configuration in effect. */
  get config(): Config {
    return this.#running;
  }

  /** Builds, checks and applies the configuration again; logs the outcome. Never throws. */
  async reload(): Promise<void> {
    const { log } = this.targets;
    try {
      await this.#reload();
    } catch (e) {
      log.error("reload failed; keeping the running configuration", { error: errorMessage(e) });
    }
  }

  async #reload(): Promise<void> {
    const t = this.targets;
    const running = this.#running;
    // Read and check everything first: a bad value or file changes nothing.
    const built = await this.rebuild();
    const changes = compareConfigs(running, built, this.grants);
    const config = keepRunning(running, built, changes.restart);
    const prepared = await prepare(config);
    const delivery = await deliverySettings(config);
    if (changes.restart.length > 0) {
      t.log.warn("reload: these settings need a restart and were left as they are", {
        keys: changes.restart.join(","),
      });
    }
    // Then apply; the certificate first, as reopening a TLS listener is what can fail.
    let authenticator = t.authenticator;
    if (prepared.users) {
      if (authenticator) authenticator.users = prepared.users;
      else authenticator = new UserAuthenticator(prepared.users);
    } else authenticator = undefined;
    await t.server.reconfigure({ config, authenticator, tls: prepared.tls });
    t.authenticator = authenticator;
    t.policy.reconfigure({
      ...t.policy.options,
      ...policySettings(config, prepared.networks, authenticator !== undefined),
    });
    t.worker.reconfigure(delivery);
    t.log.format = config.logFormat;
    t.log.level = config.logLevel;
    t.readiness.sources.maxUpstreamOutageMs = config.readyUpstreamOutage * 1000;
    this.#running = config;
    t.log.info("reloaded", {
      changed: changes.live.join(",") || "none",
      tls: prepared.tls ? "yes" : "no",
      users: prepared.users ? "yes" : "no",
    });
  }
}
