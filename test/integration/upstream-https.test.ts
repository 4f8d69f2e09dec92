import https from 'node:https';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { makeTestPki } from '../helpers/tls.js';

function get(port: number, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', servername: 'localhost', port, path: '/v2/', ca, agent: false, headers: { host: `localhost:${port}` } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}


t.test('an https upstream is verified: a private CA must be trusted (NODE_EXTRA_CA_CERTS), else 502', async (t) => {
  const front = await makeTestPki();
  const back = await makeTestPki(['localhost', '127.0.0.1']);
  const upstream = https.createServer({ cert: back.cert, key: back.key }, (req, res) => res.end(`secure ${req.headers['x-forwarded-proto']}`));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const target = `https://localhost:${(upstream.address() as AddressInfo).port}`;
  const args = ['--upstream', target, '--listen', '127.0.0.1:0', '--cert', front.certFile, '--key', front.keyFile];

  const untrusted = await startCli(args);
  const refused = await get(untrusted.port, front.ca);
  t.equal(refused.status, 502, 'an upstream certificate from an unknown CA is refused');
  t.match(refused.body, /TLS connection to the registry failed/);
  await stopCli(untrusted.child);

  const trusted = await startCli(args, { env: { NODE_EXTRA_CA_CERTS: back.caFile } });
  const ok = await get(trusted.port, front.ca);
  t.equal(ok.status, 200, 're-encrypted to an upstream whose CA is trusted');
  t.equal(ok.body, 'secure https');
  await stopCli(trusted.child);
});
