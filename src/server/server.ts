/**
 * The listeners: plain SMTP (with STARTTLS when a certificate is configured) and
 * implicit TLS (RFC 8314), one task per connection, connection limits in total
 * and per client address, and a bounded graceful stop. The accept loop never
 * waits on a session.
 */

import type { SecureContext } from "node:tls";
import type { Config } from "../config/schema.ts";
import { formatAddress, type ListenAddress } from "../config/units.ts";
import { errorMessage, type Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { QueueRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";
import { encodeReplies, reply } from "../smtp/reply.ts";
import type { Authenticator, SessionPolicy } from "../smtp/policy.ts";
import { Session } from "../smtp/session.ts";
import { Connection } from "./connection.ts";
import { ConnTransport, type Transport } from "./transport.ts";
import { settlesWithin, withTimeout } from "../deadline.ts";
import { isLoopbackAddress } from "../ip.ts";
import { NetworkList } from "../policy/networks.ts";
import { proxiedClient } from "./proxy_reader.ts";
import { secureContextOf, type TlsMaterial } from "./tls_material.ts";

export { checkTlsMaterial, type TlsMaterial } from "./tls_material.ts";

/** The longest wait for a PROXY header (the command timeout, if shorter). */
const PROXY_HEADER_TIMEOUT_MS = 30_000;

/** What the server is built from. */
export interface ServerDeps {
  config: Config;
  spool: Spool;
  log: Logger;
  metrics: Metrics;
  policy: SessionPolicy;
  authenticator?: Authenticator;
  tls?: TlsMaterial;
  onQueued?: (record: QueueRecord, bytes?: Uint8Array) => void;
}

interface Listening {
  listener: Deno.Listener;
  implicitTls: boolean;
  /** Implicit TLS done by node:tls over a plain listener, so a PROXY header can come first. */
  nodeTls: boolean;
  address: ListenAddress;
  loop: Promise<void>;
}

/** The SMTP server: listeners, connection tasks and their limits. */
export class SmtpServer {
  #listeners: Listening[] = [];
  #connections = new Set<Promise<void>>();
  #transports = new Set<Transport>();
  #perClient = new Map<string, number>();
  #shutdown = new AbortController();
  #tls: TlsMaterial | undefined;
  #secureContext: SecureContext | undefined;
  #nextId = 0;
  #stopping = false;
  /** Load balancers whose connections start with a PROXY header (and must). */
  #proxyFrom: NetworkList;

  constructor(readonly deps: ServerDeps) {
    this.#setTls(deps.tls);
    this.#proxyFrom = NetworkList.parse(deps.config.proxyProtocolFrom);
  }

  /** Bound addresses (with real ports when 0 was asked for), plain then TLS. */
  get addresses(): { address: Deno.NetAddr; implicitTls: boolean }[] {
    return this.#listeners.map((l) => ({
      address: l.listener.addr as Deno.NetAddr,
      implicitTls: l.implicitTls,
    }));
  }

  /** Opens every listener; throws with the address named if one cannot be bound. */
  start(): void {
    const { config } = this.deps;
    try {
      for (const address of config.listen) this.#listen(address, false);
      for (const address of config.listenTls) this.#listen(address, true);
    } catch (e) {
      for (const l of this.#listeners) l.listener.close();
      throw e;
    }
  }

  /**
   * Replaces the certificate (SIGHUP): new STARTTLS handshakes use it at once;
   * implicit-TLS listeners are reopened with it. Bad material changes nothing; a
   * listener that cannot be reopened keeps the previous certificate.
   */
  async reloadTls(tls: TlsMaterial): Promise<void> {
    const context = secureContextOf(tls); // throws on bad material, before any change
    const previous = { tls: this.#tls, context: this.#secureContext };
    this.#tls = tls;
    this.#secureContext = context;
    // node:tls listeners take the new context at the next handshake; Deno's are reopened.
    for (const l of this.#listeners.filter((l) => l.implicitTls && !l.nodeTls)) {
      const address = { ...l.address, port: (l.listener.addr as Deno.NetAddr).port };
      l.listener.close();
      await l.loop; // the port is free only once the pending accept has settled
      this.#listeners.splice(this.#listeners.indexOf(l), 1);
      try {
        this.#listen(address, true);
      } catch (e) {
        this.#tls = previous.tls;
        this.#secureContext = previous.context;
        try {
          this.#listen(address, true);
        } catch (again) {
          this.deps.log.error("implicit-TLS listener lost; restart carrier", {
            address: formatAddress(address),
            error: errorMessage(again),
          });
        }
        throw e;
      }
    }
  }

  /**
   * Takes a reloaded configuration for new connections (sessions already open keep
   * theirs): limits, timeouts, hosts that send a PROXY header, AUTH and the
   * certificate (the listeners stay as they are). The certificate is taken first
   * and only when it differs, so a listener that cannot be reopened changes nothing.
   */
  async reconfigure(
    next: { config: Config; authenticator?: Authenticator; tls?: TlsMaterial },
  ): Promise<void> {
    const proxyFrom = NetworkList.parse(next.config.proxyProtocolFrom);
    if (next.tls) {
      if (next.tls.cert !== this.#tls?.cert || next.tls.key !== this.#tls?.key) {
        await this.reloadTls(next.tls);
      }
    } else if (this.#tls && !this.#listeners.some((l) => l.implicitTls)) {
      this.#setTls(undefined); // no more STARTTLS
    }
    this.#proxyFrom = proxyFrom;
    this.deps.config = next.config;
    this.deps.authenticator = next.authenticator;
  }

  /**
   * Stops accepting, asks idle sessions to close (421), lets transactions finish
   * until `graceMs`, then closes what is left. Accepted messages stay queued.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const l of this.#listeners) {
      try {
        l.listener.close();
      } catch { /* already closed */ }
    }
    this.#shutdown.abort();
    const all = Promise.all([...this.#connections]);
    if (!(await settlesWithin(all, graceMs))) {
      this.deps.log.warn("shutdown: closing sessions still open", { open: this.#connections.size });
      for (const t of this.#transports) t.close();
      await all;
    }
    await Promise.all(this.#listeners.map((l) => l.loop));
  }

  #setTls(tls: TlsMaterial | undefined): void {
    this.#secureContext = tls ? secureContextOf(tls) : undefined;
    this.#tls = tls;
  }

  #listen(address: ListenAddress, implicitTls: boolean): void {
    let listener: Deno.Listener;
    const nodeTls = implicitTls && !this.#proxyFrom.empty;
    try {
      listener = implicitTls && !nodeTls
        ? Deno.listenTls({
          hostname: address.hostname,
          port: address.port,
          cert: this.#tls!.cert,
          key: this.#tls!.key,
        })
        : Deno.listen({ hostname: address.hostname, port: address.port, transport: "tcp" });
    } catch (e) {
      // A missing --allow-net stays a permission error (main prints the flag it needs).
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
      throw new Error(
        `cannot listen on ${formatAddress(address)}${implicitTls ? " (TLS)" : ""}: ${
          errorMessage(e)
        }`,
      );
    }
    const entry: Listening = {
      listener,
      implicitTls,
      nodeTls,
      address,
      loop: Promise.resolve(),
    };
    entry.loop = this.#acceptLoop(entry);
    this.#listeners.push(entry);
    const bound = listener.addr as Deno.NetAddr;
    this.deps.log.info("listening", {
      address: formatAddress({ hostname: bound.hostname, port: bound.port }),
      tls: implicitTls ? "implicit" : (this.#secureContext ? "starttls" : "none"),
    });
  }

  async #acceptLoop(entry: Listening): Promise<void> {
    while (!this.#stopping) {
      let conn: Deno.Conn;
      try {
        conn = await entry.listener.accept();
      } catch (e) {
        if (this.#stopping || e instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: back off instead of spinning.
        this.deps.log.error("accept failed", { error: errorMessage(e) });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      this.#admit(conn, entry);
    }
  }

  #admit(conn: Deno.Conn, entry: Listening): void {
    const { config, metrics } = this.deps;
    const implicitTls = entry.implicitTls;
    const remote = conn.remoteAddr as Deno.NetAddr;
    // A balancer's connections count per client once its header names the client.
    const proxied = this.#proxyFrom.contains(remote.hostname);
    const address = remote.hostname;
    const count = proxied ? 0 : this.#perClient.get(address) ?? 0;
    const id = `C${(++this.#nextId).toString(36).toUpperCase()}`;
    if (
      this.#connections.size >= config.maxConnections || count >= config.maxConnectionsPerClient
    ) {
      this.#refuse(conn, implicitTls, { conn: id, client: address, fromClient: count });
      return;
    }
    try {
      if (!implicitTls || entry.nodeTls) (conn as Deno.TcpConn).setNoDelay(true);
    } catch { /* not fatal */ }
    if (!proxied) this.#perClient.set(address, count + 1);
    metrics.inc("connections_total");
    const task = this.#start(id, conn, entry, proxied).finally(() => {
      this.#connections.delete(task);
      if (!proxied) this.#release(address);
      metrics.set("connections_active", this.#connections.size);
    });
    this.#connections.add(task);
    metrics.set("connections_active", this.#connections.size);
  }

  #release(address: string): void {
    const left = (this.#perClient.get(address) ?? 1) - 1;
    if (left <= 0) this.#perClient.delete(address);
    else this.#perClient.set(address, left);
  }

  /**
   * From a listed balancer: reads the PROXY header first (none, or a bad one, closes
   * the connection with one log line), then serves the client the header names.
   */
  async #start(
    id: string,
    conn: Deno.Conn,
    entry: Listening,
    fromBalancer: boolean,
  ): Promise<void> {
    const { config, log } = this.deps;
    if (!fromBalancer) {
      return await this.#serve(id, conn, entry, conn.remoteAddr as Deno.NetAddr, new Uint8Array());
    }
    const proxied = await proxiedClient(conn, {
      id,
      timeoutMs: Math.min(config.commandTimeout * 1000, PROXY_HEADER_TIMEOUT_MS),
      signal: this.#shutdown.signal,
      log,
    });
    if (!proxied) return;
    const { client, rest } = proxied;
    const count = this.#perClient.get(client.hostname) ?? 0;
    if (count >= config.maxConnectionsPerClient) {
      this.#refuse(conn, entry.implicitTls, {
        conn: id,
        client: client.hostname,
        fromClient: count,
      });
      return;
    }
    this.#perClient.set(client.hostname, count + 1);
    try {
      await this.#serve(id, conn, entry, client, rest);
    } finally {
      this.#release(client.hostname);
    }
  }

  async #serve(
    id: string,
    conn: Deno.Conn,
    entry: Listening,
    remote: Deno.NetAddr,
    rest: Uint8Array,
  ): Promise<void> {
    const { config, log } = this.deps;
    const implicitTls = entry.implicitTls;
    let tlsProtocol: string | undefined;
    let transport: Transport | undefined;
    if (implicitTls && entry.nodeTls) {
      try {
        transport = await new ConnTransport(conn, undefined, rest).startTls(
          this.#secureContext!,
          config.commandTimeout * 1000,
        );
      } catch (e) {
        log.info("tls handshake failed", {
          conn: id,
          client: remote.hostname,
          error: errorMessage(e),
        });
        return;
      }
    } else if (implicitTls) {
      const tlsConn = conn as Deno.TlsConn;
      try {
        await withTimeout(tlsConn.handshake(), config.commandTimeout * 1000);
        tlsProtocol = "TLS";
      } catch (e) {
        log.info("tls handshake failed", {
          conn: id,
          client: remote.hostname,
          error: errorMessage(e),
        });
        try {
          conn.close();
        } catch { /* closed */ }
        return;
      }
    }
    transport ??= new ConnTransport(conn, tlsProtocol, rest);
    this.#transports.add(transport);
    const session = new Session({
      hostname: config.hostname,
      maxMessageSize: config.maxMessageSize,
      maxRecipients: config.maxRecipients,
      maxErrors: config.maxErrors,
      starttls: this.#secureContext !== undefined && !implicitTls,
      auth: this.deps.authenticator !== undefined,
      authOnPlaintext: config.authOnPlaintextLoopback && isLoopbackAddress(remote.hostname),
      policy: this.deps.policy,
    }, { address: remote.hostname, port: remote.port, tls: implicitTls });
    const connection = new Connection(id, transport, session, {
      spool: this.deps.spool,
      log,
      metrics: this.deps.metrics,
      hostname: config.hostname,
      commandTimeoutMs: config.commandTimeout * 1000,
      dataTimeoutMs: config.dataTimeout * 1000,
      dataTotalTimeoutMs: config.dataTotalTimeout * 1000,
      tlsContext: this.#secureContext ? () => this.#secureContext! : undefined,
      authenticator: this.deps.authenticator,
      onQueued: this.deps.onQueued,
      shutdown: this.#shutdown.signal,
    });
    try {
      await connection.run();
    } finally {
      this.#transports.delete(transport);
    }
  }

  /** Tells an over-limit client why (one log line), without letting it hold the socket. */
  #refuse(
    conn: Deno.Conn,
    implicitTls: boolean,
    fields: { conn: string; client: string; fromClient: number },
  ): void {
    this.deps.metrics.inc("connections_rejected_total");
    this.deps.log.warn("connection refused: too many connections", {
      ...fields,
      total: this.#connections.size,
    });
    const bytes = encodeReplies([
      reply(421, "4.7.0", `${this.deps.config.hostname} Too many connections, try again later`),
    ]);
    const write = implicitTls ? Promise.resolve(0) : conn.write(bytes);
    withTimeout(write, 2000).catch(() => {}).finally(() => {
      try {
        conn.close();
      } catch { /* closed */ }
    });
  }
}
