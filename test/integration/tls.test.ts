// HTTPS and mutual TLS (--ssl-keyfile, --ssl-certfile, --ssl-ca-certs) on `weft launch` and `weft router`, with a
// throwaway CA made by openssl: the API answers over TLS to a client that trusts the CA; with --ssl-ca-certs a client
// without a certificate the CA signed is refused at the handshake; bad paths fail the start naming the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { startGoldenServer, textOf } from '../helpers/golden-server.js';
import { makeTestCerts } from '../helpers/tls-certs.js';
import { startRouter } from '../../deploy/router/router.js';

const certs = makeTestCerts();

/** POST/GET over https with the given TLS client options; resolves status and body, rejects on a TLS failure. */
function call(url: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json' }, ...tls }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const ca = readFileSync(certs.ca);
const client = { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) };

test('HTTPS: served to a client that trusts the CA; refused to one that does not; plain HTTP gets no answer', async () => {
  const g = await startGoldenServer({}, { flags: ['--ssl-keyfile', certs.serverKey, '--ssl-certfile', certs.serverCert] });
  try {
    assert.match(g.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await call(`${g.url}/generate`, { ca }, { inputs: textOf(g.c.sequences[0]!), parameters: { max_new_tokens: 2 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).generated_text.split(' ').length, 2);
    await assert.rejects(call(`${g.url}/health`, {}), /unable to verify the first certificate|self-signed certificate|unable to get local issuer/);
    await assert.rejects(fetch(g.url.replace('https:', 'http:') + '/health'));
  } finally {
    await g.close();
  }
});

test('mutual TLS: a client certificate signed by --ssl-ca-certs is required', async () => {
  const g = await startGoldenServer({}, { flags: ['--ssl-keyfile', certs.serverKey, '--ssl-certfile', certs.serverCert, '--ssl-ca-certs', certs.ca] });
  try {
    assert.equal((await call(`${g.url}/health`, client)).status, 200);
    await assert.rejects(call(`${g.url}/health`, { ca }), /certificate required|socket hang up|ECONNRESET|alert/i);
  } finally {
    await g.close();
  }
});

test('the router serves HTTPS too; wrong or half TLS flags fail the start naming what to give', async () => {
  const router = await startRouter({ backends: ['http://127.0.0.1:9'], port: 0, hostname: '127.0.0.1', healthIntervalMs: 60_000,
    loadFactor: 1.25, logLevel: 'silent', sslKeyfile: certs.serverKey, sslCertfile: certs.serverCert });
  try {
    assert.match(router.url, /^https:/);
    const r = await call(`${router.url}/router/backends`, { ca });
    assert.equal(r.status, 200, r.text);
  } finally {
    await router.close();
  }
  await assert.rejects(startGoldenServer({}, { flags: ['--ssl-keyfile', '/nope/key.pem', '--ssl-certfile', certs.serverCert] }),
    /--ssl-keyfile \/nope\/key\.pem: ENOENT/);
  await assert.rejects(startGoldenServer({}, { flags: ['--ssl-certfile', certs.serverCert] }), /needs both --ssl-keyfile/);
});
