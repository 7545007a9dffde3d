/** The TOML config file through the real CLI: a good file validates, a bad one exits 2 with one line. */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { runCarrier } from "../support/carrier.ts";

const EXAMPLE = new URL("../../carrier.example.toml", import.meta.url).pathname;

Deno.test("check-config: the example file validates; a TOML syntax error exits 2 naming file, line and column", async () => {
  const good = await runCarrier(["check-config", "--config", EXAMPLE]);
  strictEqual(good.code, 0, good.stderr);
  const dir = await Deno.makeTempDir({ prefix: "carrier-toml-" });
  try {
    const bad = join(dir, "bad.toml");
    await Deno.writeTextFile(bad, '[limits]\nmax_recipients = 5\nmax_errors = "3\n');
    const r = await runCarrier(["check-config", "--config", bad]);
    strictEqual(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    strictEqual(lines.length, 1, r.stderr);
    ok(lines[0].startsWith(`carrier: ${bad}:3:`), lines[0]);
    ok(!/\bat .*\.ts:\d+/.test(r.stderr), "no stack trace");
    const unknown = join(dir, "unknown.toml");
    await Deno.writeTextFile(unknown, "[listen]\nlisten_tsl = []\n");
    const u = await runCarrier(["check-config", "--config", unknown]);
    strictEqual(u.code, 2, u.stderr);
    ok(u.stderr.includes(`unknown key "listen.listen_tsl"`), u.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
