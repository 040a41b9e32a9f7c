// A throwaway certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1/localhost and a client
// certificate, made with the openssl command line (EC P-256 keys: fast), in a fresh temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  ca: string; serverKey: string; serverCert: string; clientKey: string; clientCert: string;
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tls-'));
  const at = (f: string): string => join(dir, f);
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=weft test CA');
  writeFileSync(at('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const who of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=weft test ${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '2',
      ...(who === 'server' ? ['-extfile', 'server.ext'] : []));
  }
  return { dir, ca: at('ca.pem'), serverKey: at('server.key'), serverCert: at('server.pem'), clientKey: at('client.key'), clientCert: at('client.pem') };
}
