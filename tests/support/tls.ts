/**
 * A throwaway test PKI made with the `openssl` CLI: one CA and one leaf for localhost.
 *
 * rustls (Deno's TLS) rejects a self-signed CA used as a server's own certificate, so tests
 * need a real chain: a CA with keyCertSign and a CA:FALSE leaf with serverAuth and SANs.
 */

/** Paths and PEM texts of the generated CA and `localhost` leaf certificate. */
export interface TestPki {
  dir: string;
  caCertPath: string;
  caCert: string;
  certPath: string;
  keyPath: string;
  cert: string;
  key: string;
}

let cached: Promise<TestPki> | undefined;

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`openssl ${args[0]} failed (exit ${out.code}): ${err}`);
  }
}

async function generate(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-pki-" });
  // Best-effort cleanup when the test process ends.
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // already gone or not permitted: nothing to do
    }
  });
  const caExt = [
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier=hash",
  ].join("\n") + "\n";
  const leafExt = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
    "authorityKeyIdentifier=keyid",
    "subjectKeyIdentifier=hash",
  ].join("\n") + "\n";
  await Deno.writeTextFile(`${dir}/ca.ext`, caExt);
  await Deno.writeTextFile(`${dir}/leaf.ext`, leafExt);

  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  // CA: self-signed via a CSR so the extensions come from our file only.
  await openssl([
    "req",
    "-new",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.csr",
    "-subj",
    "/CN=Carrier Test CA",
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    "ca.csr",
    "-signkey",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    "ca.ext",
  ], dir);
  // Leaf for localhost, signed by the CA.
  await openssl([
    "req",
    "-new",
    ...ec,
    "-keyout",
    "leaf.key",
    "-out",
    "leaf.csr",
    "-subj",
    "/CN=localhost",
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "leaf.pem",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    "leaf.ext",
  ], dir);

  const pki: TestPki = {
    dir,
    caCertPath: `${dir}/ca.pem`,
    caCert: await Deno.readTextFile(`${dir}/ca.pem`),
    certPath: `${dir}/leaf.pem`,
    keyPath: `${dir}/leaf.key`,
    cert: await Deno.readTextFile(`${dir}/leaf.pem`),
    key: await Deno.readTextFile(`${dir}/leaf.key`),
  };
  return pki;
}

/**
 * Returns the test PKI, generating it on first use; one per test process is enough and
 * keeps openssl out of every test's run time. `fresh` makes a new, unrelated one.
 */
export async function makeTestPki(opts: { fresh?: boolean } = {}): Promise<TestPki> {
  if (opts.fresh) return await generate();
  if (!cached) {
    cached = generate().catch((err) => {
      cached = undefined;
      throw err;
    });
  }
  return await cached;
}
