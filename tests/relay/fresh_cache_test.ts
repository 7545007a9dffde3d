import { strictEqual } from "node:assert/strict";
import { FreshCache } from "../../src/relay/fresh_cache.ts";
import { sampleRecord } from "../queue/_helpers.ts";

Deno.test("FreshCache: an entry is taken once; bytes beyond the budget are not kept", () => {
  const cache = new FreshCache();
  const a = sampleRecord({ id: "0000000000AAAAAAAA" });
  cache.put(a, new Uint8Array(10));
  strictEqual(cache.take(a.id)?.bytes?.length, 10);
  strictEqual(cache.take(a.id), undefined, "taken once");
  const big = sampleRecord({ id: "0000000000BBBBBBBB" });
  cache.put(big, new Uint8Array(9 * 1024 * 1024));
  const entry = cache.take(big.id);
  strictEqual(entry?.record, big, "the record is kept");
  strictEqual(entry?.bytes, undefined, "bytes over the 8 MiB budget are read back instead");
});
