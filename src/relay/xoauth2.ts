/**
 * The process-wide cache of OAuth2 token generators, so every upstream connection with the same
 * credentials shares one access token instead of fetching its own.
 */
import XOAuth2 from "nodemailer/lib/xoauth2/index.js";
import type { UpstreamAuth } from "./upstream_types.ts";

type XOAuth2Auth = Extract<UpstreamAuth, { kind: "xoauth2" }>;
const oauthCache = new Map<string, XOAuth2>();

/**
 * One token generator per credential set for the whole process, so an access token is fetched
 * once and reused by every connection until it expires (not once per connection).
 */
export function oauthFor(auth: XOAuth2Auth): XOAuth2 {
  const key = JSON.stringify([
    auth.user,
    auth.clientId,
    auth.clientSecret,
    auth.refreshToken,
    auth.accessUrl ?? "",
  ]);
  let generator = oauthCache.get(key);
  if (!generator) {
    if (oauthCache.size >= 8) oauthCache.clear();
    generator = new XOAuth2({
      user: auth.user,
      clientId: auth.clientId,
      clientSecret: auth.clientSecret,
      refreshToken: auth.refreshToken,
      accessUrl: auth.accessUrl,
      requestTimeout: 30_000,
    }, false);
    oauthCache.set(key, generator);
  }
  return generator;
}
