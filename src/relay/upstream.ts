/**
 * The SMTP client the delivery worker uses to hand mail to the smarthost, built on nodemailer's
 * `SMTPConnection`: STARTTLS (required) or implicit TLS, certificate verification, AUTH
 * PLAIN/LOGIN/XOAUTH2, the exact envelope and per-recipient results, streamed message bytes.
 *
 * Secrets (password, client secret, refresh token) never appear in a thrown error: messages are
 * built here and in upstream_errors.ts from server replies and scrubbed, and nodemailer's logger
 * is off.
 */
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type net from "node:net";
import type tls from "node:tls";
import SMTPConnection from "nodemailer/lib/smtp-connection/index.js";
import { DenoSocket } from "./deno_socket.ts";
import { upstreamNetTarget } from "../upstream_url.ts";
import { oneLine } from "../text.ts";
import {
  asNmError,
  classifySendFailure,
  connectFailure,
  type NmError,
  recipientFromError,
  scrubSecrets,
  stringArray,
} from "./upstream_errors.ts";
import { needsSmtpUtf8, unmetNeed } from "./extension_needs.ts";
import { oauthFor } from "./xoauth2.ts";
import { replyCode } from "./reply_outcome.ts";
import {
  type OutgoingMessage,
  type RecipientResult,
  type UpstreamAuth,
  UpstreamError,
  type UpstreamOptions,
} from "./upstream_types.ts";
import { type ExtraParams, extraParams, rcptMaxOf, withExtraParams } from "./envelope_params.ts";

const DEFAULT_CONNECT_TIMEOUT = 30_000;
const DEFAULT_SOCKET_TIMEOUT = 5 * 60_000;
const CLOSE_WAIT_MS = 2_000;

/** Reads the parts of SMTPConnection that have no public API, defensively. */
interface Internals {
  _supportedExtensions?: unknown;
  _envelope?: unknown;
  _sendCommand?: unknown;
}

/** One authenticated SMTP session to the smarthost; reusable for several messages. */
export class UpstreamSession {
  readonly #conn: SMTPConnection;
  readonly #raw: DenoSocket;
  readonly #rawClosed: Promise<void>;
  readonly #secrets: string[];
  #sent = 0;
  #closed = false;
  #dirty = false;
  /** A send is under way: the socket may be in the middle of DATA. */
  #sending = false;
  /** Parameters added to the MAIL FROM and RCPT TO lines of the message being sent. */
  #extra: ExtraParams | undefined;

  private constructor(conn: SMTPConnection, raw: DenoSocket, secrets: string[]) {
    this.#conn = conn;
    this.#raw = raw;
    this.#secrets = secrets;
    this.#rawClosed = raw.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => raw.once("close", () => resolve()));
  }

  /**
   * Connects, secures (STARTTLS is mandatory for `starttls`), verifies the certificate and
   * authenticates. Throws {@link UpstreamError} on any failure, after closing the socket.
   */
  static async open(opts: UpstreamOptions): Promise<UpstreamSession> {
    const c = opts.config;
    const tlsOptions: tls.ConnectionOptions = {
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    };
    // `ca` REPLACES the default trust store (Node semantics, also in Deno): with it, only that
    // CA is trusted (pinning a private smarthost CA). Adding it to the defaults would need
    // `tls.rootCertificates`, which Deno guards with an unrestricted --allow-sys.
    if (opts.ca) tlsOptions.ca = [opts.ca];
    if (c.servername) tlsOptions.servername = c.servername;
    const connectTimeout = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT;
    const secrets: string[] = [];
    if (opts.auth?.kind === "password") secrets.push(opts.auth.password);
    if (opts.auth?.kind === "xoauth2") secrets.push(opts.auth.clientSecret, opts.auth.refreshToken);
    const where = upstreamNetTarget(c);

    let raw: DenoSocket;
    try {
      raw = await DenoSocket.connect(c.host, c.port, connectTimeout);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new UpstreamError(`cannot connect to upstream ${where}: ${oneLine(msg)}`, false);
    }
    const conn = new SMTPConnection({
      // An open connection: nodemailer does no DNS and no node:net connect (see DenoSocket).
      connection: raw as unknown as net.Socket,
      host: c.host,
      port: c.port,
      secure: c.security === "tls",
      requireTLS: c.security === "starttls",
      ignoreTLS: c.security === "plain",
      opportunisticTLS: false,
      servername: c.servername,
      name: opts.clientHostname,
      connectionTimeout: connectTimeout,
      greetingTimeout: connectTimeout,
      socketTimeout: opts.socketTimeoutMs ?? DEFAULT_SOCKET_TIMEOUT,
      socketCloseTimeout: 1_000,
      logger: false,
      debug: false,
      transactionLog: false,
      tls: tlsOptions,
    });
    const session = new UpstreamSession(conn, raw, secrets.filter((s) => s.length >= 3));
    try {
      session.#install();
      await session.#op<void>((done) => conn.connect((err) => done(err ?? null)));
    } catch (e) {
      await session.#abort();
      const f = connectFailure(e, where, (text) => session.#scrub(text));
      throw new UpstreamError(f.message, false, f.code);
    }

    if (opts.auth) {
      if (!conn.allowsAuth) {
        await session.close();
        throw new UpstreamError(
          "upstream does not offer AUTH (after TLS); cannot authenticate",
          false,
        );
      }
      try {
        await session.#login(opts.auth);
      } catch (e) {
        await session.close();
        const err = asNmError(e);
        const code = err.responseCode;
        const detail = err.response ?? err.message;
        throw new UpstreamError(
          session.#scrub(`upstream authentication failed: ${oneLine(detail)}`),
          code !== undefined && code >= 500,
          code,
        );
      }
    }
    if (opts.transactionTimeoutMs !== undefined) {
      session.#setInactivityTimeout(opts.transactionTimeoutMs);
    }
    return session;
  }

  /** Changes the socket inactivity limit nodemailer set at connect (its `_socket`). */
  #setInactivityTimeout(ms: number): void {
    const internals = this.#conn as unknown as {
      options?: { socketTimeout?: number };
      _socket?: { setTimeout?: (ms: number) => unknown };
    };
    if (internals.options) internals.options.socketTimeout = ms;
    internals._socket?.setTimeout?.(ms);
  }

  /** Messages transmitted (MAIL FROM issued) on this connection, for the reuse limit. */
  get sentCount(): number {
    return this.#sent;
  }

  /** Recipients the upstream takes per transaction, by its EHLO `LIMITS RCPTMAX` (RFC 9422). */
  get recipientLimit(): number | undefined {
    return rcptMaxOf(stringArray((this.#conn as unknown as { _ehloLines?: unknown })._ehloLines));
  }

  /** False once the connection is closed or broken; the worker should open a new one. */
  get usable(): boolean {
    return !this.#closed && !this.#conn.destroyed;
  }

  /**
   * Sends one message with its exact envelope and returns one result per recipient (in the
   * order given). Throws {@link UpstreamError} (temporary) if the connection fails mid-way; the
   * caller then retries every recipient it has not recorded as delivered. An unfinished
   * earlier transaction is reset first; an error from `msg.open()` propagates unchanged.
   */
  async send(msg: OutgoingMessage): Promise<RecipientResult[]> {
    if (!this.usable) throw new UpstreamError("upstream connection is closed", false);
    if (msg.recipients.length === 0) return [];
    const needsUtf8 = needsSmtpUtf8(msg);
    // Never sent changed: what the upstream lacks fails each recipient, with a bounce.
    const unmet = unmetNeed(msg, this.#extensions(), needsUtf8);
    if (unmet) {
      return msg.recipients.map((recipient) => ({ recipient, status: "failed", response: unmet }));
    }
    if (this.#dirty) await this.reset();

    const body = msg.bytes
      ? Readable.from([Buffer.from(msg.bytes.buffer, msg.bytes.byteOffset, msg.bytes.length)])
      : Readable.fromWeb((await msg.open()) as unknown as NodeReadableStream<Uint8Array>);
    this.#sent++;
    this.#dirty = true;
    this.#sending = true;
    const extensions = this.#extensions();
    this.#extra = extraParams(msg, extensions, needsUtf8);
    // The upstream takes over DSN duty for what it accepts (RFC 3461 §4.1).
    const dsnForwarded = msg.dsn !== undefined && extensions.includes("DSN");
    try {
      const info = await this.#op<SMTPConnection.SentMessageInfo>((done) =>
        this.#conn.send(
          {
            from: msg.sender,
            to: msg.recipients,
            size: msg.size > 0 ? msg.size : undefined,
            use8BitMime: msg.eightBit,
          },
          body,
          done,
        )
      );
      // The reply to the final dot ends the transaction: the next MAIL needs no RSET.
      this.#dirty = false;
      const response = oneLine(info.response);
      const rejected = new Map<string, NmError>();
      for (const e of (info.rejectedErrors ?? []).map(asNmError)) {
        if (e.recipient !== undefined) rejected.set(e.recipient, e);
      }
      return msg.recipients.map((recipient) => {
        const e = rejected.get(recipient.trim());
        return e ? recipientFromError(recipient, e) : {
          recipient,
          status: "delivered",
          code: replyCode(response) ?? 250,
          response,
          ...(dsnForwarded ? { dsnForwarded } : {}),
        };
      });
    } catch (e) {
      if (!body.destroyed) body.destroy();
      return await this.#sendFailure(msg, asNmError(e));
    } finally {
      this.#sending = false;
      this.#extra = undefined;
    }
  }

  /** RSET: ends any transaction so the connection can carry the next message. */
  async reset(): Promise<void> {
    if (!this.usable) throw new UpstreamError("upstream connection is closed", false);
    try {
      await this.#op<boolean | undefined>((done) => this.#conn.reset(done));
      this.#dirty = false;
    } catch (e) {
      await this.close();
      const err = asNmError(e);
      throw new UpstreamError(
        this.#scrub(`upstream RSET failed: ${oneLine(err.response ?? err.message)}`),
        false,
        err.responseCode,
      );
    }
  }

  /**
   * QUIT and close the socket (waits briefly for it to close); safe to call twice.
   * During a send it drops the connection instead: a QUIT written into the middle of
   * DATA could be taken as part of the message, which would then count as delivered.
   */
  async close(): Promise<void> {
    if (!this.#closed && this.#sending) {
      await this.#abort();
      return;
    }
    if (!this.#closed) {
      this.#closed = true;
      const conn = this.#conn;
      if (!conn.destroyed && conn.stage === "connected") {
        const ended = new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            conn.close();
            resolve();
          }, CLOSE_WAIT_MS);
          conn.once("end", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        try {
          conn.quit();
        } catch {
          conn.close();
        }
        await ended;
      } else {
        conn.close();
      }
    }
    await this.#release();
  }

  // --- internals -------------------------------------------------------------------------

  /** Drops the connection without QUIT (it may be in the middle of DATA). */
  async #abort(): Promise<void> {
    this.#closed = true;
    this.#conn.close();
    this.#raw.destroy();
    await this.#release();
  }

  /** Makes sure the TCP connection itself is closed (TLS over it may not close it). */
  async #release(): Promise<void> {
    const timer = setTimeout(() => this.#raw.destroy(), CLOSE_WAIT_MS);
    await this.#rawClosed;
    clearTimeout(timer);
  }

  /** Permanent listeners, and the hook that adds parameters to MAIL FROM and RCPT TO. */
  #install(): void {
    // Without an 'error' listener an EventEmitter error would crash the process.
    this.#conn.on("error", () => {});
    this.#conn.on("end", () => {
      this.#closed = true;
    });
    // nodemailer adds SMTPUTF8 only for non-ASCII addresses (a message with UTF-8 headers needs
    // it too, RFC 6531) and DSN parameters only per message, not per recipient: add them here.
    const internals = this.#conn as unknown as Internals;
    const original = internals._sendCommand;
    if (typeof original !== "function" || !Array.isArray(internals._supportedExtensions)) {
      throw new Error("nodemailer SMTPConnection internals changed (_sendCommand/extensions)");
    }
    internals._sendCommand = (str: unknown, logStr?: unknown) => {
      const extra = this.#extra;
      const line = extra && typeof str === "string" ? withExtraParams(str, extra) : str;
      return original.call(this.#conn, line, logStr);
    };
  }

  #extensions(): string[] {
    return stringArray((this.#conn as unknown as Internals)._supportedExtensions);
  }

  /** Runs one nodemailer callback operation, also settling on 'error'/'end' events. */
  #op<T>(start: (done: (err: unknown, value?: T) => void) => void): Promise<T> {
    const conn = this.#conn;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: unknown, value?: T) => {
        if (settled) return;
        settled = true;
        conn.removeListener("error", onError);
        conn.removeListener("end", onEnd);
        if (err) reject(err);
        else resolve(value as T);
      };
      const onError = (err: unknown) => finish(err ?? new Error("upstream connection error"));
      // After a 421 nodemailer emits 'end' first, then hands the reply over: the reply wins.
      const onEnd = () =>
        queueMicrotask(() =>
          finish(
            Object.assign(new Error("Connection closed unexpectedly"), { code: "ECONNECTION" }),
          )
        );
      conn.on("error", onError);
      conn.once("end", onEnd);
      try {
        start(finish);
      } catch (e) {
        finish(e);
      }
    });
  }

  #login(auth: UpstreamAuth): Promise<boolean | undefined> {
    const conn = this.#conn;
    if (auth.kind === "password") {
      return this.#op((done) => conn.login({ user: auth.user, pass: auth.password }, done));
    }
    const oauth2 = oauthFor(auth);
    return this.#op((done) => conn.login({ type: "OAuth2", user: auth.user, oauth2 }, done));
  }

  #scrub(text: string): string {
    return scrubSecrets(text, this.#secrets);
  }

  /** Maps a failed `conn.send` to per-recipient results, or throws if the session broke. */
  async #sendFailure(msg: OutgoingMessage, err: NmError): Promise<RecipientResult[]> {
    const envelope = (this.#conn as unknown as Internals)._envelope;
    const outcome = classifySendFailure(msg.recipients, err, envelope, (t) => this.#scrub(t));
    if (outcome.kind === "results") return outcome.results;
    await this.#abort();
    throw new UpstreamError(outcome.failure.message, false, outcome.failure.code);
  }
}
