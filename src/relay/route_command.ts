/**
 * `carrier route ADDRESS... [--from SENDER]`: which upstreams a message would use, from the
 * same resolution and Router the worker uses; and the upstream and route listing that
 * `carrier check-config` prints. Reads the configuration only: nothing is connected.
 */

import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import {
  DEFAULT_MAX_RECIPIENTS,
  type ResolvedUpstreams,
  resolveUpstreams,
  type UpstreamSpec,
} from "../config/upstreams.ts";
import { Router } from "./routes.ts";

/** Runs `carrier route`; returns the exit code. */
export function runRouteCommand(
  config: Config,
  addresses: string[],
  opts: { from?: string; json: boolean },
): number {
  if (addresses.length === 0) {
    throw new ConfigError("route: give one or more recipient addresses (see carrier route --help)");
  }
  const sender = opts.from === "<>" ? "" : opts.from;
  for (const a of [...addresses, ...(sender ? [sender] : [])]) {
    if (!/^[^@\s<>]+@[^@\s<>]+$/.test(a)) {
      throw new ConfigError(`route: "${a}" is not an address (local@domain)`);
    }
  }
  const resolved = resolveUpstreams(config);
  const router = new Router(resolved);
  const answers = addresses.map((recipient) => {
    const { rule, via } = router.route(sender, recipient);
    return {
      recipient,
      sender: sender ?? null,
      route: rule === -1 ? "default" : `routes[${rule}]`,
      upstreams: via.map((i) => resolved.upstreams[i]!.name),
    };
  });
  if (opts.json) {
    console.log(JSON.stringify(answers, null, 2));
    return 0;
  }
  for (const a of answers) {
    const rule = a.route === "default"
      ? "the default list"
      : `${a.route} (${describeRule(resolved, Number(a.route.slice(7, -1)))})`;
    const from = a.sender === null ? "any sender" : `<${a.sender}>`;
    console.log(`<${a.recipient}> from ${from}: ${rule}`);
    if (a.upstreams.length === 0) console.log("  none: held in the queue (hold mode)");
    a.upstreams.forEach((name, n) => {
      const spec = resolved.upstreams.find((u) => u.name === name)!;
      console.log(`  ${n + 1}. ${describeUpstream(spec)}`);
    });
  }
  return 0;
}

/** The upstreams and routes of a configuration, as lines for `check-config`. */
export function describeRouting(resolved: ResolvedUpstreams): string[] {
  if (resolved.upstreams.length === 0) return ["upstreams: none (hold mode)"];
  const name = (i: number) => resolved.upstreams[i]!.name;
  const lines = ["upstreams:"];
  for (const spec of resolved.upstreams) lines.push(`  ${describeUpstream(spec)}`);
  lines.push(`default route: ${resolved.defaultVia.map(name).join(", then ")}`);
  resolved.routes.forEach((route, r) => {
    lines.push(
      `routes[${r}]: ${describeRule(resolved, r)} -> ${route.via.map(name).join(", then ")}`,
    );
  });
  return lines;
}

function describeRule(resolved: ResolvedUpstreams, r: number): string {
  const route = resolved.routes[r]!;
  return [
    route.from.length > 0 ? `from ${route.from.join(", ")}` : "",
    route.to.length > 0 ? `to ${route.to.join(", ")}` : "",
  ].filter((s) => s).join("; ");
}

/** `gmail starttls://me@smtp.gmail.com:587 (500 messages a day, 2 connections)`. */
function describeUpstream(spec: UpstreamSpec): string {
  const limits = [
    spec.messagesPerMinute > 0 ? `${spec.messagesPerMinute} messages a minute` : "",
    spec.dailyMessages > 0 ? `${spec.dailyMessages} messages a day` : "",
    spec.dailyRecipients > 0 ? `${spec.dailyRecipients} recipients a day` : "",
    spec.maxConnections > 0 ? `${spec.maxConnections} connections` : "",
    spec.maxRecipients !== DEFAULT_MAX_RECIPIENTS
      ? `${spec.maxRecipients} recipients a transaction`
      : "",
  ].filter((s) => s).join(", ");
  const label = spec.name === spec.url ? spec.url : `${spec.name} ${spec.url}`;
  return limits ? `${label} (${limits})` : label;
}
