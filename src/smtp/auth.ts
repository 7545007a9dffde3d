/**
 * The client side of an inbound AUTH exchange (RFC 4954) for PLAIN (RFC 4616) and
 * LOGIN: parsing the AUTH command, the base64 responses and the challenges between
 * them. The session decides when AUTH is allowed and what to do with the outcome.
 */

import { type Reply, reply } from "./reply.ts";

/** The SASL mechanisms offered. */
export type AuthMechanism = "PLAIN" | "LOGIN";

/** The AUTH command's arguments, or the error reply for bad ones. */
export type AuthCommand =
  | { mechanism: AuthMechanism; initial?: string }
  | { error: Reply };

/** What one client response leads to: another challenge, credentials to check, or an error. */
export type AuthStep =
  | { kind: "challenge"; reply: Reply }
  | { kind: "verify"; user: string; password: string }
  | { kind: "abandon"; reply: Reply };

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Parses `AUTH mechanism [initial-response]` (the text after the verb). */
export function parseAuthCommand(args: string): AuthCommand {
  const [mechanism = "", initial, extra] = args.trim().split(/ +/);
  if (extra !== undefined) return { error: reply(501, "5.5.4", "Syntax: AUTH mechanism") };
  switch (mechanism.toUpperCase()) {
    case "PLAIN":
      return { mechanism: "PLAIN", initial };
    case "LOGIN":
      return { mechanism: "LOGIN", initial };
    case "":
      return { error: reply(501, "5.5.4", "Syntax: AUTH mechanism") };
    default:
      return { error: reply(504, "5.5.4", "Unrecognized authentication mechanism") };
  }
}

/** One AUTH exchange in progress: the mechanism and, once given, the user name. */
export class AuthExchange {
  #user: string | undefined;

  constructor(readonly mechanism: AuthMechanism) {}

  /** The user name the client gave, once it has given one. */
  get user(): string | undefined {
    return this.#user;
  }

  /** The first challenge, sent when the AUTH command had no initial response. */
  challenge(): Reply {
    return this.mechanism === "PLAIN"
      ? reply(334, undefined, "")
      : reply(334, undefined, "VXNlcm5hbWU6");
  }

  /** Handles one client response line (base64, `=` for empty, `*` to cancel). */
  respond(text: string): AuthStep {
    if (text.trim() === "*") {
      return { kind: "abandon", reply: reply(501, "5.0.0", "Authentication cancelled") };
    }
    const decoded = decodeBase64Utf8(text.trim() === "=" ? "" : text.trim());
    if (decoded === undefined) {
      return { kind: "abandon", reply: reply(501, "5.5.2", "Cannot decode response") };
    }
    if (this.mechanism === "PLAIN") {
      const parts = decoded.split("\0");
      if (parts.length !== 3 || parts[1] === "" || (parts[0] !== "" && parts[0] !== parts[1])) {
        return { kind: "abandon", reply: reply(501, "5.5.2", "Invalid PLAIN response") };
      }
      this.#user = parts[1];
      return { kind: "verify", user: parts[1], password: parts[2] };
    }
    if (this.#user === undefined) {
      if (decoded === "") {
        return { kind: "abandon", reply: reply(501, "5.5.2", "Empty user name") };
      }
      this.#user = decoded;
      return { kind: "challenge", reply: reply(334, undefined, "UGFzc3dvcmQ6") };
    }
    return { kind: "verify", user: this.#user, password: decoded };
  }
}

function decodeBase64Utf8(text: string): string | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  try {
    const binary = atob(text);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}
