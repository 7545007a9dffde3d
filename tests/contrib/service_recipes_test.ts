/**
 * The service recipes in contrib/: the systemd unit passes `systemd-analyze verify`
 * with no warning, and the Containerfile's command line is a configuration the
 * real CLI accepts (Docker cannot build here; this is what can be checked).
 */

import { match, ok, strictEqual } from "node:assert/strict";
import { runCarrier } from "../support/carrier.ts";

const CONTRIB = new URL("../../contrib/", import.meta.url);
const ANALYZE = "/usr/bin/systemd-analyze";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "carrier.service: systemd-analyze verify reports nothing",
  ignore: !exists(ANALYZE),
  fn: async () => {
    const unit = await Deno.readTextFile(new URL("systemd/carrier.service", CONTRIB));
    match(unit, /^ExecStart=\/usr\/local\/bin\/carrier serve --spool \/var\/spool\/carrier /m);
    for (
      const line of [
        "User=carrier",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/spool/carrier",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
      ]
    ) ok(unit.split("\n").includes(line), line);
    // verify needs the ExecStart binary to exist: the same unit, pointing at a copy of true.
    const dir = await Deno.makeTempDir({ prefix: "carrier-unit-" });
    try {
      await Deno.copyFile("/bin/true", `${dir}/carrier`);
      await Deno.chmod(`${dir}/carrier`, 0o755);
      await Deno.writeTextFile(
        `${dir}/carrier.service`,
        unit.replaceAll("/usr/local/bin/carrier", `${dir}/carrier`),
      );
      const out = await new Deno.Command(ANALYZE, {
        args: ["verify", `${dir}/carrier.service`],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      strictEqual(out.code, 0, text);
      // Unknown keys are only warnings (exit 0): any output at all is a failure.
      strictEqual(text.trim(), "", text);
      // And the check can fail: a misspelt key is reported.
      await Deno.writeTextFile(
        `${dir}/carrier.service`,
        unit.replaceAll("/usr/local/bin/carrier", `${dir}/carrier`).replace(
          "NoNewPrivileges=",
          "NoNewPrivilege=",
        ),
      );
      const bad = await new Deno.Command(ANALYZE, {
        args: ["verify", `${dir}/carrier.service`],
        stderr: "piped",
        stdout: "null",
        signal: AbortSignal.timeout(60_000),
      }).output();
      match(new TextDecoder().decode(bad.stderr), /Unknown key 'NoNewPrivilege'/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("Containerfile: its command line passes carrier check-config", async () => {
  const text = await Deno.readTextFile(new URL("container/Containerfile", CONTRIB));
  const cmd = /^CMD (\[.*\])$/m.exec(text);
  ok(cmd, "a CMD line in exec form");
  const args: string[] = JSON.parse(cmd[1]);
  strictEqual(args[0], "serve");
  match(text, /^USER carrier$/m);
  match(text, /^VOLUME \["\/var\/spool\/carrier"\]$/m);
  ok(args.includes("0.0.0.0:2525") && args.includes("--relay-networks"), args.join(" "));
  const checked = await runCarrier(["check-config", ...args.slice(1)]);
  strictEqual(checked.code, 0, checked.stderr);
  match(checked.stdout, /0\.0\.0\.0:2525/);
  match(checked.stdout, /172\.16\.0\.0\/12/);
  // The same flags with a mistake are refused: the check is real.
  const wrong = await runCarrier([
    "check-config",
    ...args.slice(1),
    "--log-format",
    "xml",
  ]);
  strictEqual(wrong.code, 2, wrong.stdout);
  strictEqual(wrong.stderr.trim(), 'carrier: --log-format: "xml" must be text or json');
});
