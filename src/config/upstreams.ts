/**
 * Named upstreams and routes: the config file's `[upstreams.NAME]` tables and `[[routes]]`
 * rules, checked by zod, and resolved with the flags' plain URLs into one ordered list of
 * upstreams with every setting filled in. The relay, the permissions and `carrier route`
 * all read this one resolution, so they cannot disagree about where mail goes.
 */

import { z } from "zod";
import { parseUpstreamUrl } from "../upstream_url.ts";
import { ConfigError } from "./error.ts";
import type { Config } from "./schema.ts";
import { parseDuration } from "./units.ts";

/** Recipients in one upstream transaction unless set lower (Gmail's cap is 100). */
export const DEFAULT_MAX_RECIPIENTS = 100;

/** What an upstream's name may be: it is also part of environment variable names. */
export const UPSTREAM_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/i;
/** UPSTREAM_NAME_RE in words, for errors. */
export const UPSTREAM_NAME_RULE =
  "an upstream name is a letter then letters, digits, - or _ (at most 32)";
const positiveInt = z.number({ error: "must be a whole number >= 1" }).int().positive();
const nonNegativeInt = z.number({ error: "must be a whole number >= 0" }).int().nonnegative();
const text = z.string({ error: "must be a non-empty string" }).min(1);
const oneOrMore = z.union([text, z.array(text).min(1)], {
  error: "must be a string or a non-empty list of strings",
});

/** One `[upstreams.NAME]` table: its URL, credentials, TLS, timeout, limits and quotas. */
export const NamedUpstreamSchema = z.strictObject({
  url: text.refine((u) => {
    try {
      parseUpstreamUrl(u);
      return true;
    } catch {
      return false;
    }
  }, { error: "must be an upstream URL: starttls://[user@]host[:port], smtps://… or smtp://…" }),
  passwordFile: text.optional(),
  oauth2: z.boolean({ error: "must be true or false" }).optional(),
  ca: text.optional(),
  servername: text.optional(),
  timeout: z.union([z.number(), z.string()], { error: "must be a duration" }).refine((v) => {
    try {
      return parseDuration(v, "timeout") > 0;
    } catch {
      return false;
    }
  }, { error: 'must be seconds > 0 or a number with s, m or h (e.g. "30s")' }).optional(),
  maxRecipients: positiveInt.optional(),
  maxConnections: positiveInt.optional(),
  messagesPerConnection: positiveInt.optional(),
  messagesPerMinute: nonNegativeInt.optional(),
  dailyMessages: nonNegativeInt.optional(),
  dailyRecipients: nonNegativeInt.optional(),
});

/** One `[[routes]]` rule: which mail (sender, recipient domain) goes through which upstreams. */
export const RouteSchema = z.strictObject({
  from: oneOrMore.optional(),
  to: oneOrMore.optional(),
  via: oneOrMore,
}).refine((r) => r.from !== undefined || r.to !== undefined, {
  error: "a route needs from (senders) or to (recipient domains), or both",
});

/** The `upstreams` key of a config file: name → table. */
export const UpstreamsSchema = z.record(
  z.string().regex(UPSTREAM_NAME_RE),
  NamedUpstreamSchema,
  {
    error: (issue) => issue.code === "invalid_type" ? "must be tables [upstreams.NAME]" : undefined,
  },
);

/** A named upstream as written in the file. */
export type NamedUpstream = z.infer<typeof NamedUpstreamSchema>;
/** A route as written in the file. */
export type RouteRule = z.infer<typeof RouteSchema>;

/** The environment variables that hold an OAuth2 client's credentials. */
export interface OAuth2Variables {
  clientId: string;
  clientSecret: string;
  refreshToken: string;
}

/** One upstream with every setting decided: what the relay connects with. */
export interface UpstreamSpec {
  /** Its name in logs, metrics and bounces: the table's name, or the URL as written. */
  name: string;
  url: string;
  passwordFile?: string;
  /** Where its password is read when it has no password file. */
  passwordVariable: string;
  /** Where its OAuth2 credentials are read (used when the refresh token variable is set). */
  oauth2?: OAuth2Variables;
  ca?: string;
  servername?: string;
  /** Seconds to connect and for each reply. */
  timeout: number;
  maxRecipients: number;
  /** Connections open to it at once (0: only the worker's delivery concurrency). */
  maxConnections: number;
  messagesPerConnection: number;
  /** Quotas, 0 = none: messages in any minute, messages and recipients in any 24 hours. */
  messagesPerMinute: number;
  dailyMessages: number;
  dailyRecipients: number;
}

/** A route with its upstreams as positions in the resolved list. */
export interface ResolvedRoute {
  from: string[];
  to: string[];
  /** Indexes into ResolvedUpstreams.upstreams, in failover order. */
  via: number[];
}

/** Every upstream once, the default failover list, and the routes in the order written. */
export interface ResolvedUpstreams {
  upstreams: UpstreamSpec[];
  /** Indexes of the default failover list (`upstream`); empty is hold mode. */
  defaultVia: number[];
  routes: ResolvedRoute[];
}

/** A problem in the upstream list, the named upstreams or the routes, with the key it is about. */
export class UpstreamsError extends ConfigError {
  constructor(readonly key: string, readonly problem: string) {
    super(`${key}: ${problem}`);
  }
}

/** `ses-eu` → `SES_EU`: a name as it appears in an environment variable. */
function envSuffix(name: string): string {
  return name.toUpperCase().replace(/-/g, "_");
}

/** The variable with the password of position `i` (0-based) of a list of plain URLs. */
export function positionalPasswordVariable(i: number): string {
  return i === 0 ? "CARRIER_UPSTREAM_PASSWORD" : `CARRIER_UPSTREAM_PASSWORD_${i + 1}`;
}

/** The variables of the named upstream `name`: CARRIER_UPSTREAM_PASSWORD_NAME and OAuth2's. */
export function namedVariables(name: string): { password: string; oauth2: OAuth2Variables } {
  const s = envSuffix(name);
  return {
    password: `CARRIER_UPSTREAM_PASSWORD_${s}`,
    oauth2: {
      clientId: `CARRIER_OAUTH2_CLIENT_ID_${s}`,
      clientSecret: `CARRIER_OAUTH2_CLIENT_SECRET_${s}`,
      refreshToken: `CARRIER_OAUTH2_REFRESH_TOKEN_${s}`,
    },
  };
}

/** The OAuth2 variables of the first plain upstream URL (as before named upstreams). */
const DEFAULT_OAUTH2: OAuth2Variables = {
  clientId: "CARRIER_OAUTH2_CLIENT_ID",
  clientSecret: "CARRIER_OAUTH2_CLIENT_SECRET",
  refreshToken: "CARRIER_OAUTH2_REFRESH_TOKEN",
};

/**
 * Resolves `config.upstream` (URLs or names of `[upstreams.*]`), the named upstreams and the
 * routes into one list. Named upstreams missing from `upstream` are used only by routes; with
 * no `upstream` at all, the named ones in the order written are the default list. Throws a
 * ConfigError naming the key for an unknown name or a duplicate.
 */
export function resolveUpstreams(config: Config): ResolvedUpstreams {
  const named = config.upstreams ?? {};
  const upstreams: UpstreamSpec[] = [];
  const index = new Map<string, number>();
  const add = (spec: UpstreamSpec): number => {
    const known = index.get(spec.name);
    if (known !== undefined) return known;
    index.set(spec.name, upstreams.length);
    upstreams.push(spec);
    return upstreams.length - 1;
  };
  /** An upstream from its table (a plain URL is a table with only `url`) and credentials. */
  const specOf = (
    name: string,
    t: NamedUpstream,
    credentials: Pick<UpstreamSpec, "passwordFile" | "passwordVariable" | "oauth2">,
  ): UpstreamSpec => ({
    name,
    url: t.url,
    ...credentials,
    ca: t.ca ?? config.upstreamCa,
    servername: t.servername ?? config.upstreamServername,
    timeout: t.timeout === undefined
      ? config.upstreamTimeout
      : parseDuration(t.timeout, `upstreams.${name}.timeout`),
    maxRecipients: t.maxRecipients ?? DEFAULT_MAX_RECIPIENTS,
    maxConnections: t.maxConnections ?? 0,
    messagesPerConnection: t.messagesPerConnection ?? config.messagesPerConnection,
    messagesPerMinute: t.messagesPerMinute ?? 0,
    dailyMessages: t.dailyMessages ?? 0,
    dailyRecipients: t.dailyRecipients ?? 0,
  });
  const fromTable = (name: string): UpstreamSpec => {
    const t = named[name]!;
    const vars = namedVariables(name);
    return specOf(name, t, {
      passwordFile: t.passwordFile,
      passwordVariable: vars.password,
      oauth2: t.oauth2 ? vars.oauth2 : undefined,
    });
  };
  const list = config.upstream.length > 0 ? config.upstream : Object.keys(named);
  const files = config.upstreamPasswordFile;
  const defaultVia = list.map((entry, i) => {
    if (entry.includes("://")) {
      return add(specOf(entry, { url: entry }, {
        passwordFile: files.length === 1 ? files[0] : files[i],
        passwordVariable: positionalPasswordVariable(i),
        oauth2: i === 0 ? DEFAULT_OAUTH2 : undefined,
      }));
    }
    if (!Object.hasOwn(named, entry)) {
      throw new UpstreamsError(
        "upstream",
        `"${entry}" is neither a URL nor a name in [upstreams]${known(named)}`,
      );
    }
    return add(fromTable(entry));
  });
  // Names differing only in case or in - and _ would read the same variables.
  const suffixes = new Map<string, string>();
  for (const name of Object.keys(named)) {
    const other = suffixes.get(envSuffix(name));
    if (other !== undefined) {
      throw new UpstreamsError(
        "upstreams",
        `"${other}" and "${name}" would read the same variables (${
          namedVariables(name).password
        }); give them names that differ in more than case, - and _`,
      );
    }
    suffixes.set(envSuffix(name), name);
  }
  if (new Set(defaultVia).size !== defaultVia.length) {
    throw new UpstreamsError("upstream", "an upstream is listed twice; give each once");
  }
  const routes = config.routes.map((rule, r): ResolvedRoute => {
    const via = [rule.via].flat().map((name) => {
      if (!Object.hasOwn(named, name)) {
        throw new UpstreamsError(
          `routes[${r}].via`,
          `"${name}" is not a name in [upstreams]${known(named)}`,
        );
      }
      return add(fromTable(name));
    });
    if (new Set(via).size !== via.length) {
      throw new UpstreamsError(`routes[${r}].via`, "an upstream is listed twice; give each once");
    }
    const from = [rule.from ?? []].flat();
    for (const pattern of from) {
      if (!/^(<>|\*@[^@\s]+|[^@\s*]+@[^@\s*]+)$/.test(pattern)) {
        throw new UpstreamsError(
          `routes[${r}].from`,
          `"${pattern}" must be an address, *@domain or <> (the null sender)`,
        );
      }
    }
    const to = [rule.to ?? []].flat();
    for (const pattern of to) {
      if (!/^(\*\.)?[^@\s*]+$/.test(pattern)) {
        throw new UpstreamsError(
          `routes[${r}].to`,
          `"${pattern}" must be a domain or *.domain (its subdomains)`,
        );
      }
    }
    return {
      from: from.map((p) => p.toLowerCase()),
      to: to.map((p) => p.toLowerCase()),
      via,
    };
  });
  return { upstreams, defaultVia, routes };
}

function known(named: Record<string, unknown>): string {
  const names = Object.keys(named);
  return names.length > 0 ? ` (named: ${names.join(", ")})` : " (none is named)";
}
