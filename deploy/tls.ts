// HTTPS for `weft launch` and `weft router` (vLLM's --ssl-keyfile / --ssl-certfile / --ssl-ca-certs): the PEM files
// are read once at start, so a wrong path fails the start with its name; with a CA bundle, clients must present a
// certificate it signed (mutual TLS) — the connection is refused before any request is read otherwise.
import { readFileSync } from 'node:fs';
import type { SecureContextOptions, TlsOptions } from 'node:tls';

export interface TlsFlags {
  sslKeyfile: string | null;
  sslCertfile: string | null;
  sslCaCerts: string | null;
}

/** The https options for fastify, or null for plain HTTP. Throws naming the flag and file when one cannot be read. */
export function httpsOptionsOf(o: TlsFlags): (TlsOptions & SecureContextOptions) | null {
  if (o.sslKeyfile === null && o.sslCertfile === null) {
    if (o.sslCaCerts !== null) throw new Error('--ssl-ca-certs verifies client certificates over HTTPS: give --ssl-keyfile and --ssl-certfile too');
    return null;
  }
  if (o.sslKeyfile === null || o.sslCertfile === null) {
    throw new Error('HTTPS needs both --ssl-keyfile (the private key) and --ssl-certfile (the certificate chain), PEM files');
  }
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`${flag} ${path}: ${(e as Error).message}`);
    }
  };
  const options: TlsOptions & SecureContextOptions = { key: read('--ssl-keyfile', o.sslKeyfile), cert: read('--ssl-certfile', o.sslCertfile) };
  if (o.sslCaCerts !== null) Object.assign(options, { ca: read('--ssl-ca-certs', o.sslCaCerts), requestCert: true, rejectUnauthorized: true });
  return options;
}
