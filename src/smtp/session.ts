/**
 * The SMTP server state machine (RFC 5321, with RFC 1870 SIZE, 6152 8BITMIME,
 * 6531 SMTPUTF8, 2920 PIPELINING, 2034 ENHANCEDSTATUSCODES, 3207 STARTTLS,
 * 4954 AUTH, 3461 DSN and 3030 CHUNKING). It performs no I/O: each input line yields replies and at most one
 * effect for the server to carry out, so every rule is testable without a socket.
 */

import { AuthExchange, parseAuthCommand } from "./auth.ts";
import { parseBdat } from "./bdat.ts";
import { decodeCommand, parseMailCommand, parseRcptCommand, splitCommand } from "./command.ts";
import { outOfSequence, type SequencedVerb, starttlsOutOfSequence } from "./sequence.ts";
import type { Line } from "./line_stream.ts";
import { ehloLines, HELP_TEXT } from "./capabilities.ts";
import type { ClientInfo, DataResult, Envelope, SessionState, Step } from "./envelope.ts";
import type { SessionPolicy } from "./policy.ts";
import { type Reply, reply } from "./reply.ts";
import { Transaction } from "./transaction.ts";

/** Per-listener settings of a session. */
export interface SessionOptions {
  hostname: string;
  maxMessageSize: number;
  maxRecipients: number;
  /** Error replies allowed before the session is closed with 421. */
  maxErrors: number;
  /** A certificate is configured: offer STARTTLS while the session is in plaintext. */
  starttls: boolean;
  /** A user database is configured: offer AUTH PLAIN and LOGIN. */
  auth: boolean;
  /** Offer AUTH without TLS (only ever set for loopback clients). */
  authOnPlaintext: boolean;
  policy: SessionPolicy;
}

/** RFC 5321 §4.5.3.1.4: 512 octets including CRLF. */
export const MAX_COMMAND_LINE = 510;

/** One SMTP session's protocol state. */
export class Session {
  #state: SessionState = "connected";
  #client: ClientInfo;
  #helo = "";
  #esmtp = false;
  #user: string | undefined;
  #errors = 0;
  #overlong = false;
  #txn: Transaction | undefined;
  /** The refusal of the BDAT whose octets the server is discarding. */
  #chunkRefusal: Reply | undefined;
  #auth: AuthExchange | undefined;

  constructor(readonly options: SessionOptions, client: ClientInfo) {
    this.#client = { ...client };
  }

  /** The current state. */
  get state(): SessionState {
    return this.#state;
  }

  /** The client as the session sees it (tls flips after STARTTLS). */
  get client(): ClientInfo {
    return this.#client;
  }

  /** The authenticated user, if any. */
  get user(): string | undefined {
    return this.#user;
  }

  /** The number of error replies so far. */
  get errors(): number {
    return this.#errors;
  }

  /** The 220 greeting sent when the connection opens. */
  greeting(): Reply {
    return reply(220, undefined, `${this.options.hostname} ESMTP Carrier`);
  }

  /** Handles one line (or fragment of an overlong line) received in a command state. */
  receive(line: Line): Step {
    if (this.#state === "closed") return { replies: [] };
    if (this.#state === "data") {
      throw new Error("Session.receive called in data state: message lines go to the data reader");
    }
    if (!line.complete) {
      this.#overlong = true;
      return { replies: [] };
    }
    if (this.#overlong || line.bytes.length > MAX_COMMAND_LINE) {
      this.#overlong = false;
      const tooLong = reply(500, "5.5.6", "Line too long");
      return this.#state === "auth" ? this.#abandonAuth(tooLong) : this.#fail(tooLong);
    }
    const decoded = decodeCommand(line.bytes);
    if ("error" in decoded) return this.#fail(decoded.error);
    const text = decoded.text;
    if (this.#state === "auth") return this.#authContinue(text);
    const { verb, args } = splitCommand(text);
    switch (verb) {
      case "EHLO":
        return this.#hello(args, true);
      case "HELO":
        return this.#hello(args, false);
      case "MAIL":
        return this.#mail(args);
      case "RCPT":
        return this.#rcpt(args);
      case "DATA":
        return this.#data(args);
      case "BDAT":
        return this.#bdat(args);
      case "RSET":
        if (args.trim() !== "") return this.#fail(reply(501, "5.5.4", "Syntax: RSET"));
        this.#resetTransaction();
        if (this.#state !== "connected") this.#state = "greeted";
        return this.#ok(reply(250, "2.0.0", "Ok"));
      case "NOOP":
        return this.#ok(reply(250, "2.0.0", "Ok"));
      case "QUIT":
        this.#state = "closed";
        return { replies: [reply(221, "2.0.0", "Bye")], effect: { kind: "close" } };
      case "VRFY":
        if (args.trim() === "") return this.#fail(reply(501, "5.5.4", "Syntax: VRFY address"));
        return this.#ok(reply(252, "2.5.0", "Cannot VRFY user, but will accept message"));
      case "HELP":
        return this.#ok(reply(214, "2.0.0", ...HELP_TEXT));
      case "STARTTLS":
        return this.#starttls(args);
      case "AUTH":
        return this.#authStart(args);
      case "EXPN":
      case "TURN":
      case "ETRN":
        return this.#fail(reply(502, "5.5.1", `${verb} not implemented`));
      default:
        return this.#fail(reply(500, "5.5.2", "Command not recognized"));
    }
  }

  /**
   * Called by the server when message data has been read and stored (or not), and after
   * each BDAT chunk (a refused one included, once its octets are read).
   */
  dataFinished(result: DataResult): Step {
    if (this.#chunkRefusal) {
      const refusal = this.#chunkRefusal;
      this.#chunkRefusal = undefined;
      return this.#fail(refusal);
    }
    if (this.#state !== "data") throw new Error("dataFinished outside of data state");
    if (result.kind === "chunk") {
      this.#state = "bdat";
      return this.#ok(reply(250, "2.0.0", "Ok: chunk received"));
    }
    this.#resetTransaction();
    this.#state = "greeted";
    switch (result.kind) {
      case "stored":
        return this.#ok(reply(250, "2.0.0", `Ok: queued as ${result.id}`));
      case "too-big":
        return this.#fail(reply(552, "5.3.4", "Message size exceeds fixed maximum message size"));
      case "store-failed":
        return this.#fail(reply(451, "4.3.0", "Error: queue file write error, try again later"));
    }
  }

  /** Called by the server with the outcome of an `authenticate` effect. */
  authFinished(outcome: "ok" | "failed" | "throttled"): Step {
    if (this.#state !== "auth" || !this.#auth?.user) {
      throw new Error("authFinished without a pending authentication");
    }
    const user = this.#auth.user;
    this.#auth = undefined;
    this.#state = "greeted";
    if (outcome === "ok") {
      this.#user = user;
      return this.#ok(reply(235, "2.7.0", "Authentication successful"));
    }
    if (outcome === "throttled") {
      this.#state = "closed";
      return {
        replies: [reply(421, "4.7.0", "Too many failed authentications, closing connection")],
        effect: { kind: "close" },
      };
    }
    return this.#fail(reply(535, "5.7.8", "Authentication credentials invalid"));
  }

  /** Called by the server once the TLS handshake after STARTTLS has completed. */
  tlsStarted(): void {
    // RFC 3207 §4.2: forget everything learnt from the client before TLS.
    this.#client = { ...this.#client, tls: true };
    this.#resetTransaction();
    this.#helo = "";
    this.#esmtp = false;
    this.#user = undefined;
    this.#state = "connected";
  }

  /** The reply for a timeout (RFC 5321 §4.5.3.2); the session ends. */
  timeout(): Step {
    this.#state = "closed";
    return {
      replies: [reply(421, "4.4.2", `${this.options.hostname} Error: timeout exceeded`)],
      effect: { kind: "close" },
    };
  }

  /** The reply when the server shuts down; the session ends. */
  shutdown(): Step {
    this.#state = "closed";
    return {
      replies: [reply(421, "4.3.2", `${this.options.hostname} Service shutting down`)],
      effect: { kind: "close" },
    };
  }

  #hello(args: string, esmtp: boolean): Step {
    const name = args.trim();
    if (name === "" || /\s/.test(name)) {
      return this.#fail(reply(501, "5.5.4", `Syntax: ${esmtp ? "EHLO" : "HELO"} hostname`));
    }
    this.#resetTransaction();
    this.#helo = name;
    this.#esmtp = esmtp;
    this.#state = "greeted";
    if (!esmtp) return this.#ok(reply(250, undefined, this.options.hostname));
    const lines = ehloLines(this.options, {
      starttls: this.options.starttls && !this.#client.tls,
      auth: this.#authOffered(),
    });
    return this.#ok({ code: 250, lines });
  }

  #authOffered(): boolean {
    return this.options.auth && (this.#client.tls || this.options.authOnPlaintext);
  }

  #mail(args: string): Step {
    const early = this.#outOfSequence("MAIL");
    if (early) return this.#fail(early);
    const from = parseMailCommand(args, {
      esmtp: this.#esmtp,
      maxMessageSize: this.options.maxMessageSize,
      authOffered: this.#authOffered(),
    });
    if ("error" in from) return this.#fail(from.error);
    const refusal = this.options.policy.mail(this.#policyContext(), from.address);
    if (refusal) return this.#fail(refusal);
    this.#txn = new Transaction(from.address, from.smtputf8, from.params);
    this.#state = "mail";
    return this.#ok(reply(250, "2.1.0", "Ok"));
  }

  #rcpt(args: string): Step {
    const early = this.#outOfSequence("RCPT");
    if (early) return this.#fail(early);
    const txn = this.#txn!;
    const to = parseRcptCommand(args, { esmtp: this.#esmtp, utf8: txn.smtputf8 });
    if ("error" in to) return this.#fail(to.error);
    if (txn.recipients.length >= this.options.maxRecipients) {
      return { replies: [reply(452, "4.5.3", "Error: too many recipients")] };
    }
    const refusal = this.options.policy.rcpt(this.#policyContext(), to.address, txn.sender);
    if (refusal) return this.#fail(refusal);
    txn.add(to.address, to.dsn);
    this.#state = "rcpt";
    return this.#ok(reply(250, "2.1.5", "Ok"));
  }

  #data(args: string): Step {
    if (args.trim() !== "") return this.#fail(reply(501, "5.5.4", "Syntax: DATA"));
    const early = this.#outOfSequence("DATA");
    if (early) return this.#fail(early);
    this.#state = "data";
    return {
      replies: [reply(354, undefined, "End data with <CR><LF>.<CR><LF>")],
      effect: { kind: "data", envelope: this.#envelope() },
    };
  }

  /**
   * BDAT (RFC 3030): the server reads the chunk's octets in every case, so a refused BDAT
   * (say, pipelined after a failed one) costs its octets and the session stays in step.
   */
  #bdat(args: string): Step {
    const chunk = parseBdat(args);
    if ("error" in chunk) return this.#fail(chunk.error);
    const refusal = this.#outOfSequence("BDAT");
    if (refusal) {
      this.#chunkRefusal = refusal;
      return { replies: [], effect: { kind: "chunk", chunk, discard: true } };
    }
    const first = this.#state === "rcpt";
    this.#state = "data";
    return {
      replies: [],
      effect: {
        kind: "chunk",
        chunk,
        envelope: first ? this.#envelope() : undefined,
        discard: false,
      },
    };
  }

  #envelope(): Envelope {
    return this.#txn!.envelope({
      helo: this.#helo,
      client: this.#client,
      user: this.#user,
      protocol: this.#protocol(),
    });
  }

  #starttls(args: string): Step {
    if (!this.options.starttls || this.#client.tls) {
      return this.#fail(reply(502, "5.5.1", "STARTTLS not available"));
    }
    if (args.trim() !== "") return this.#fail(reply(501, "5.5.4", "Syntax: STARTTLS"));
    const early = starttlsOutOfSequence(this.#state);
    if (early) return this.#fail(early);
    return { replies: [reply(220, "2.0.0", "Ready to start TLS")], effect: { kind: "starttls" } };
  }

  #authStart(args: string): Step {
    if (!this.options.auth) return this.#fail(reply(502, "5.5.1", "AUTH not available"));
    const early = this.#outOfSequence("AUTH");
    if (early) return this.#fail(early);
    const command = parseAuthCommand(args);
    if ("error" in command) return this.#fail(command.error);
    this.#state = "auth";
    this.#auth = new AuthExchange(command.mechanism);
    if (command.initial === undefined) return { replies: [this.#auth.challenge()] };
    return this.#authContinue(command.initial);
  }

  #authContinue(text: string): Step {
    const step = this.#auth!.respond(text);
    switch (step.kind) {
      case "challenge":
        return { replies: [step.reply] };
      case "verify":
        return {
          replies: [],
          effect: { kind: "authenticate", user: step.user, password: step.password },
        };
      case "abandon":
        return this.#abandonAuth(step.reply);
    }
  }

  /** Ends an AUTH exchange with an error reply; the session is back to greeted. */
  #abandonAuth(r: Reply): Step {
    this.#auth = undefined;
    this.#state = "greeted";
    return this.#fail(r);
  }

  #outOfSequence(verb: SequencedVerb): Reply | undefined {
    return outOfSequence(verb, {
      state: this.#state,
      esmtp: this.#esmtp,
      authenticated: this.#user !== undefined,
      authOffered: this.#authOffered(),
    });
  }

  #policyContext(): { client: ClientInfo; user?: string } {
    return { client: this.#client, user: this.#user };
  }

  #protocol(): string {
    if (!this.#esmtp) return "SMTP";
    return `ESMTP${this.#client.tls ? "S" : ""}${this.#user !== undefined ? "A" : ""}`;
  }

  #resetTransaction(): void {
    this.#txn = undefined;
  }

  #ok(r: Reply): Step {
    return { replies: [r] };
  }

  /** Counts an error reply; past the limit the session ends with 421 (RFC 5321 §4.2.2). */
  #fail(r: Reply): Step {
    this.#errors++;
    if (this.#errors >= this.options.maxErrors) {
      this.#state = "closed";
      return {
        replies: [r, reply(421, "4.7.0", `${this.options.hostname} Error: too many errors`)],
        effect: { kind: "close" },
      };
    }
    return { replies: [r] };
  }
}
