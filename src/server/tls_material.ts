/** The server's certificate and key: checked before use, made into a TLS context. */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import { errorMessage } from "../ops/log.ts";

/** Certificate and key in PEM, as read from the configured files. */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/** A server-side TLS context (TLS 1.2 or newer); throws on a bad certificate or key. */
export function secureContextOf(tls: TlsMaterial): SecureContext {
  checkTlsMaterial(tls);
  return createSecureContext({ cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" });
}

/**
 * Throws unless `cert` is a PEM certificate and `key` its private key. Deno's
 * createSecureContext accepts garbage, which would only fail at the first handshake.
 */
export function checkTlsMaterial(tls: TlsMaterial): void {
  let matches: boolean;
  try {
    matches = new X509Certificate(tls.cert).checkPrivateKey(createPrivateKey(tls.key));
  } catch (e) {
    throw new Error(`cannot read the certificate or key: ${errorMessage(e)}`);
  }
  if (!matches) throw new Error("the private key does not belong to the certificate");
}
