/**
 * A real stand-in smarthost for tests, built on npm `smtp-server`: STARTTLS or implicit TLS
 * with the test PKI, AUTH against a user map, and switchable failure behaviours.
 */
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import type { TestPki } from "./tls.ts";

/** One message as the smarthost received it; `data` is byte-exact (dot-unstuffed). */
export interface ReceivedMail {
  from: string;
  to: string[];
  data: Uint8Array;
  user?: string;
  /** The client sent the SMTPUTF8 MAIL parameter. */
  smtputf8: boolean;
  /** BODY= of MAIL FROM ("7bit" unless the client sent BODY=8BITMIME). */
  bodyType: string;
  /** SIZE= of MAIL FROM, when the client announced one. */
  declaredSize?: number;
  /** The session was encrypted (STARTTLS or implicit TLS) when the message arrived. */
  secure: boolean;
  /** DSN parameters as received (only when the smarthost offers DSN): RET, ENVID, per RCPT. */
  dsn?: {
    ret?: string;
    envid?: string;
    recipients: { notify?: string[]; orcpt?: string }[];
  };
}

/** Failure switches, changeable at any time with `setBehavior`. */
export interface SmarthostBehavior {
  /** RCPT TO replies by recipient address (case-insensitive), e.g. `{ "x@y": 550 }`. */
  rejectRecipients: Record<string, number | { code: number; message: string }>;
  /** Reply this code (e.g. 451 or 554) to the next DATA transfer, then clear it. */
  failDataOnce: number;
  /** Destroy the socket in the middle of the next N DATA transfers. */
  dropMidData: number;
  /** Answer every MAIL FROM with 451. */
  tempFailAll: boolean;
  /** Answer every MAIL FROM with this reply (e.g. a quota or policy refusal). */
  rejectMailFrom?: { code: number; message: string };
  /**
   * The MAIL FROM and DATA switches (tempFailAll, rejectMailFrom, dropMidData) apply only
   * once this many messages have been received (default 0: at once).
   */
  failAfter: number;
}

/** Handle of a running smarthost. */
export interface Smarthost {
  port: number;
  received: ReceivedMail[];
  /** The verb of every command the clients sent, in order (e.g. "EHLO", "MAIL", "RSET"). */
  commands: string[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Successful AUTH logins so far. */
  readonly logins: number;
  close(): Promise<void>;
  setBehavior(b: Partial<SmarthostBehavior>): void;
  /** Resolves once `count` messages are received; rejects after `timeoutMs` (default 5 s). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
}

/**
 * Options of `startSmarthost`. Reply texts carry no enhanced status codes: smtp-server adds
 * them itself (ENHANCEDSTATUSCODES is on).
 */
export interface SmarthostOptions {
  pki: TestPki;
  /** user → password; when given, AUTH is required. */
  users?: Record<string, string>;
  /** Implicit TLS (smtps). */
  secure?: boolean;
  /** Offer STARTTLS (default true). */
  starttls?: boolean;
  /** Default PLAIN, LOGIN. */
  authMethods?: string[];
  behavior?: Partial<SmarthostBehavior>;
  /** Do not advertise SMTPUTF8. */
  hideSmtputf8?: boolean;
  /** Do not advertise PIPELINING. */
  hidePipelining?: boolean;
  /** Do not advertise 8BITMIME (RFC 6152). */
  hide8bitmime?: boolean;
  /** Advertise DSN (RFC 3461) and record its parameters in `ReceivedMail.dsn`. */
  dsn?: boolean;
  /** Listen on this port (default: any free port). */
  port?: number;
  /**
   * Advertise `LIMITS <value>` (RFC 9422) in the EHLO reply, e.g. "RCPTMAX=40" (smtp-server
   * has no LIMITS of its own: the line is added to its EHLO reply; nothing is enforced).
   */
  limits?: string;
}

type SmtpError = Error & { responseCode?: number };

function smtpError(code: number, message: string): SmtpError {
  const err: SmtpError = new Error(message);
  err.responseCode = code;
  return err;
}

type DsnEnvelope = {
  dsn?: { ret?: string | null; envid?: string | null };
  rcptTo: { dsn?: { notify?: string[]; orcpt?: string | null } }[];
};

/** The DSN parameters smtp-server parsed, with nulls and empty lists left out. */
function dsnOf(env: DsnEnvelope): NonNullable<ReceivedMail["dsn"]> {
  return {
    ...(env.dsn?.ret ? { ret: env.dsn.ret } : {}),
    ...(env.dsn?.envid ? { envid: env.dsn.envid } : {}),
    recipients: env.rcptTo.map((r) => ({
      ...(r.dsn?.notify?.length ? { notify: r.dsn.notify } : {}),
      ...(r.dsn?.orcpt ? { orcpt: r.dsn.orcpt } : {}),
    })),
  };
}

/** SIZE= of MAIL FROM as smtp-server parsed it (its `args`), when there was one. */
function sizeOf(mailFrom: unknown): { declaredSize?: number } {
  const size = (mailFrom as { args?: { SIZE?: unknown } } | undefined)?.args?.SIZE;
  return typeof size === "string" ? { declaredSize: Number(size) } : {};
}

function userOf(session: { user?: unknown }): string | undefined {
  return typeof session.user === "string" ? session.user : undefined;
}

/**
 * `carrier serve` flags to relay through a smarthost on `port` with STARTTLS and AUTH as
 * `user` (the password comes from CARRIER_UPSTREAM_PASSWORD), with 1-2 s retries.
 */
export function upstreamArgs(pki: TestPki, port: number, user: string, extra: string[] = []) {
  return upstreamListArgs(pki, [{ port, user }], extra);
}

/** One upstream of a failover list for {@link upstreamListArgs}. */
export interface UpstreamSpec {
  port: number;
  /** The URL's user; none: no AUTH. */
  user?: string;
}

/**
 * `carrier serve` flags to relay through these smarthosts in failover order (one --upstream
 * each, STARTTLS, the test CA for all), with 1-2 s retries unless `extra` says otherwise.
 */
export function upstreamListArgs(pki: TestPki, upstreams: UpstreamSpec[], extra: string[] = []) {
  return [
    ...upstreams.flatMap((u) => [
      "--upstream",
      `starttls://${u.user ? `${u.user}@` : ""}127.0.0.1:${u.port}`,
    ]),
    "--upstream-ca",
    pki.caCertPath,
    "--upstream-servername",
    "localhost",
    "--retry-min",
    "1s",
    "--retry-max",
    "2s",
    ...extra,
  ];
}

/** The connection of `sessionId` adds `LIMITS value` to its EHLO replies. */
function advertiseLimits(server: SMTPServer, sessionId: string, value: string): void {
  type Conn = { id: string; send(code: number, data: unknown, context?: unknown): void };
  for (const conn of server.connections as unknown as Set<Conn>) {
    if (conn.id !== sessionId) continue;
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      // The EHLO reply: a list that starts with the greeting line smtp-server makes.
      const ehlo = code === 250 && Array.isArray(data) && /Nice to meet you/.test(String(data[0]));
      send(code, ehlo ? [...data, `LIMITS ${value}`] : data, context);
    };
  }
}

/** RCPT commands per transaction (between one MAIL and the next) in a `commands` log. */
export function rcptCounts(commands: readonly string[]): number[] {
  const counts: number[] = [];
  for (const verb of commands) {
    if (verb === "MAIL") counts.push(0);
    else if (verb === "RCPT" && counts.length > 0) counts[counts.length - 1]++;
  }
  return counts;
}

/** Starts a smarthost on 127.0.0.1 with an ephemeral port. */
export async function startSmarthost(opts: SmarthostOptions): Promise<Smarthost> {
  const behavior: SmarthostBehavior = {
    rejectRecipients: {},
    failDataOnce: 0,
    dropMidData: 0,
    tempFailAll: false,
    failAfter: 0,
    ...opts.behavior,
  };
  const failing = () => received.length >= behavior.failAfter;
  const received: ReceivedMail[] = [];
  const commands: string[] = [];
  const waiters = new Set<() => void>();
  let connections = 0;
  let logins = 0;
  const users = opts.users;
  const disabled: string[] = [];
  if (opts.starttls === false) disabled.push("STARTTLS");
  if (!users) disabled.push("AUTH");

  const options: SMTPServerOptions = {
    name: "smarthost.test",
    key: opts.pki.key,
    cert: opts.pki.cert,
    secure: opts.secure ?? false,
    // A logger only to see the commands (smtp-server logs each one at debug level).
    logger: {
      debug(entry: { tnx?: string; command?: string }) {
        if (entry?.tnx === "command" && entry.command) commands.push(entry.command);
      },
      info() {},
      warn() {},
      error() {},
      trace() {},
      fatal() {},
    } as unknown as SMTPServerOptions["logger"],
    disableReverseLookup: true,
    disabledCommands: disabled,
    authMethods: opts.authMethods ?? ["PLAIN", "LOGIN"],
    authOptional: !users,
    allowInsecureAuth: opts.starttls === false,
    hideSMTPUTF8: opts.hideSmtputf8 ?? false,
    hidePIPELINING: opts.hidePipelining ?? false,
    hide8BITMIME: opts.hide8bitmime ?? false,
    hideDSN: !opts.dsn,
    hideENHANCEDSTATUSCODES: false,
    size: 10 * 1024 * 1024,
    closeTimeout: 1000,
    socketTimeout: 10_000,
    onConnect(session, callback) {
      connections++;
      if (opts.limits) advertiseLimits(server, session.id, opts.limits);
      callback();
    },
    onAuth(auth, _session, callback) {
      const expected = users?.[auth.username ?? ""];
      const given = auth.method === "XOAUTH2" ? auth.accessToken : auth.password;
      if (expected !== undefined && given === expected) {
        logins++;
        return callback(null, { user: auth.username });
      }
      if (auth.method === "XOAUTH2") {
        return callback(null, { data: { status: "401", schemes: "bearer" } });
      }
      callback(smtpError(535, "Authentication credentials invalid"));
    },
    onMailFrom(_address, _session, callback) {
      if (behavior.tempFailAll && failing()) {
        return callback(smtpError(451, "Temporary failure, try again later"));
      }
      if (behavior.rejectMailFrom && failing()) {
        return callback(smtpError(behavior.rejectMailFrom.code, behavior.rejectMailFrom.message));
      }
      callback();
    },
    onRcptTo(address, _session, callback) {
      const wanted = address.address.toLowerCase();
      for (const [addr, reply] of Object.entries(behavior.rejectRecipients)) {
        if (addr.toLowerCase() === wanted) {
          if (typeof reply === "object") return callback(smtpError(reply.code, reply.message));
          const text = reply >= 500 ? "No such user" : "Mailbox busy, try later";
          return callback(smtpError(reply, text));
        }
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Uint8Array[] = [];
      let dropping = false;
      if (behavior.dropMidData > 0 && failing()) {
        behavior.dropMidData--;
        dropping = true;
      }
      stream.on("data", (chunk: Uint8Array) => {
        chunks.push(chunk);
        if (dropping) {
          dropping = false;
          for (const conn of server.connections) {
            if (conn.id === session.id) conn._socket.destroy();
          }
        }
      });
      stream.on("error", (err: Error) => callback(err));
      stream.on("end", () => {
        if (behavior.failDataOnce) {
          const code = behavior.failDataOnce;
          behavior.failDataOnce = 0;
          const text = code >= 500 ? "Message rejected" : "Try again later";
          return callback(smtpError(code, text));
        }
        const total = chunks.reduce((n, c) => n + c.length, 0);
        const data = new Uint8Array(total);
        let off = 0;
        for (const c of chunks) {
          data.set(c, off);
          off += c.length;
        }
        const env = session.envelope;
        received.push({
          from: env.mailFrom ? env.mailFrom.address : "",
          to: env.rcptTo.map((r) => r.address),
          data,
          user: userOf(session),
          smtputf8: env.smtpUtf8 === true,
          bodyType: env.bodyType ?? "7bit",
          ...sizeOf(env.mailFrom),
          secure: session.secure,
          ...(opts.dsn ? { dsn: dsnOf(env) } : {}),
        });
        for (const w of [...waiters]) w();
        callback(null, `Ok: queued as ${received.length}`);
      });
    },
  };

  const server = new SMTPServer(options);
  // Connection-level errors (e.g. a client dropping mid-handshake) are expected in tests.
  server.on("error", () => {});
  const port = await new Promise<number>((resolve, reject) => {
    const net = server.listen(opts.port ?? 0, "127.0.0.1", () => {
      const addr = net.address();
      if (addr && typeof addr === "object") resolve(addr.port);
      else reject(new Error("smarthost: no listening address"));
    });
    net.once("error", reject);
  });

  let closed: Promise<void> | undefined;
  return {
    port,
    received,
    commands,
    get connections() {
      return connections;
    },
    get logins() {
      return logins;
    },
    setBehavior(b) {
      Object.assign(behavior, b);
    },
    waitFor(count, timeoutMs = 5000) {
      if (received.length >= count) return Promise.resolve(received.slice());
      return new Promise((resolve, reject) => {
        const check = () => {
          if (received.length >= count) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(received.slice());
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`smarthost: ${received.length}/${count} messages after ${timeoutMs} ms`),
          );
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close() {
      closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
      return closed;
    },
  };
}
