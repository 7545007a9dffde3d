/**
 * Which upstreams a recipient's copy goes through: the first route whose senders and
 * recipient domains match, else the default failover list. Pure, so `carrier route`
 * answers exactly what the worker does.
 */

import type { ResolvedRoute, ResolvedUpstreams } from "../config/upstreams.ts";

/** The route a recipient takes: the rule's position (-1: the default list) and its upstreams. */
export interface RouteChoice {
  rule: number;
  via: number[];
}

/** Picks upstream lists by envelope sender and recipient domain. */
export class Router {
  constructor(readonly resolved: Pick<ResolvedUpstreams, "defaultVia" | "routes">) {}

  /**
   * The route for `recipient` of a message from `sender` ("" for the null sender; undefined,
   * for `carrier route` without --from, matches no sender pattern).
   */
  route(sender: string | undefined, recipient: string): RouteChoice {
    const from = sender?.toLowerCase();
    const domain = domainOf(recipient);
    const rules = this.resolved.routes;
    for (let i = 0; i < rules.length; i++) {
      if (matches(rules[i]!, from, domain)) return { rule: i, via: rules[i]!.via };
    }
    return { rule: -1, via: this.resolved.defaultVia };
  }

  /**
   * `recipients` grouped by route, in the order first seen: each group is one set of upstream
   * transactions, so recipients with different routes never share one.
   */
  group(sender: string, recipients: string[]): { via: number[]; recipients: string[] }[] {
    const groups = new Map<number, { via: number[]; recipients: string[] }>();
    for (const recipient of recipients) {
      const { rule, via } = this.route(sender, recipient);
      const group = groups.get(rule) ?? { via, recipients: [] };
      group.recipients.push(recipient);
      groups.set(rule, group);
    }
    return [...groups.values()];
  }
}

/** The worker's router; without one, every upstream is one failover list. */
export function routerOf(options: { upstreams: readonly unknown[]; router?: Router }): Router {
  return options.router ??
    new Router({ defaultVia: options.upstreams.map((_, i) => i), routes: [] });
}

/** The default list by `names` and how many routes there are, for the start-up log line. */
export function describeRouter(router: Router, names: readonly string[]): string {
  const { defaultVia, routes } = router.resolved;
  const list = defaultVia.map((i) => names[i]).join(", then ");
  return routes.length > 0 ? `${list} (and ${routes.length} routes)` : list;
}

function matches(rule: ResolvedRoute, sender: string | undefined, domain: string): boolean {
  const fromOk = rule.from.length === 0 || rule.from.some((p) => senderMatches(p, sender));
  const toOk = rule.to.length === 0 || rule.to.some((p) => domainMatches(p, domain));
  return fromOk && toOk;
}

/** `<>` is the null sender, `*@example.org` any sender at that domain, else one address. */
function senderMatches(pattern: string, sender: string | undefined): boolean {
  if (sender === undefined) return false;
  if (pattern === "<>") return sender === "";
  if (pattern.startsWith("*@")) return sender !== "" && domainOf(sender) === pattern.slice(2);
  return pattern === sender;
}

/** `*.example.org` matches its subdomains (not itself); else the domain exactly. */
function domainMatches(pattern: string, domain: string): boolean {
  if (pattern.startsWith("*.")) return domain.endsWith(pattern.slice(1));
  return pattern === domain;
}

/** The domain of an address, lowercased, without a trailing dot. */
function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase().replace(/\.$/, "");
}
