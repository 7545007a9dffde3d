/**
 * Optional sender and recipient rules, checked at MAIL and RCPT time.
 *
 * Addresses come without angle brackets; the domain is what follows the LAST `@`.
 * Domains compare case-insensitively (a trailing dot is ignored); local parts compare
 * exactly, as RFC 5321 §2.4 leaves their case to the receiving host. A rule that names
 * `Ops@example.com` therefore does not admit `ops@example.com`: the safe direction.
 * Internationalised domains are compared as given (no IDNA conversion).
 */

/** Which senders and recipient domains are allowed; absent lists impose no restriction. */
export interface AddressRules {
  /** Allowed senders: `ops@example.com`, `@example.com` or `example.com` (the whole domain). */
  senders?: string[];
  /** Allowed recipient domains: `example.com` exactly, `.example.com` for its subdomains only. */
  recipientDomains?: string[];
  /** Per authenticated user, the senders that user may use (replaces `senders` for them). */
  userSenders?: Record<string, string[]>;
}

function normalizeDomain(domain: string): string {
  return domain.trim().toLowerCase().replace(/\.$/, "");
}

/** Splits at the last `@`; an address without `@` has an empty domain. */
function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf("@");
  if (at < 0) return { local: address, domain: "" };
  return { local: address.slice(0, at), domain: normalizeDomain(address.slice(at + 1)) };
}

function senderMatches(pattern: string, local: string, domain: string): boolean {
  const p = pattern.trim();
  const at = p.lastIndexOf("@");
  if (at <= 0) {
    // `@example.com` or `example.com`: any sender in that domain.
    const patternDomain = normalizeDomain(p.slice(at + 1));
    return patternDomain !== "" && patternDomain === domain;
  }
  const patternDomain = normalizeDomain(p.slice(at + 1));
  return patternDomain !== "" && p.slice(0, at) === local && patternDomain === domain;
}

/**
 * True when `sender` ("" = null sender) may be used: `userSenders[user]` applies to an
 * authenticated user that has an entry, else `senders`; with no applicable rule, any sender
 * (including the null sender) is allowed. Under a rule the null sender is refused.
 */
export function senderAllowed(rules: AddressRules, sender: string, user?: string): boolean {
  const userSenders = rules.userSenders;
  const list = user !== undefined && userSenders !== undefined && Object.hasOwn(userSenders, user)
    ? userSenders[user]
    : rules.senders;
  if (list === undefined) return true;
  if (sender === "") return false;
  const { local, domain } = splitAddress(sender);
  if (domain === "") return false;
  return list.some((pattern) => senderMatches(pattern, local, domain));
}

/**
 * True when mail may be relayed to `recipient`: with `recipientDomains` set, its domain must
 * equal a listed domain, or be a subdomain of a listed `.domain` (which excludes the domain itself).
 */
export function recipientAllowed(rules: AddressRules, recipient: string): boolean {
  const list = rules.recipientDomains;
  if (list === undefined) return true;
  const { domain } = splitAddress(recipient);
  if (domain === "") return false;
  return list.some((raw) => {
    const pattern = normalizeDomain(raw.replace(/^\s*@/, ""));
    if (pattern.startsWith(".")) return pattern.length > 1 && domain.endsWith(pattern);
    return pattern !== "" && pattern === domain;
  });
}
