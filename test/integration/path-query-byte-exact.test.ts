import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask, rawExchange } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('path and query reach the upstream byte-exact', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(202).end());
  const tb = await startTestBerth(t, { upstream: up.url });
  const paths = [
    '/v2/library/app/blobs/uploads/5d1d4a57-5c1e-4b3c-9d2c-7b8f1a2b3c4d?_state=AbC%2BdEf%2Fgh%3D%3D&digest=sha256%3A0123',
    '/v2/library/app/blobs/uploads/u?_state=a+b%2b%2B%3d%3D',
    '/v2//double//slashes/%2e%2e/x;p=1?q=http://a//b&&=&x=%25',
    '/v2/x/manifests/sha256:abc?ns=docker.io',
  ];
  for (const path of paths) {
    await ask(tb, { method: 'PATCH', path, body: 'chunk' });
    t.equal(up.seen.at(-1)!.url, path, path);
  }
});

t.test('an absolute-form request target goes upstream in origin-form, query byte-exact', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const reply = await rawExchange(tb, `GET https://localhost:${tb.port}/v2/?a=%2B&b=%3d HTTP/1.1\r\nHost: ignored.example\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 200 /);
  t.equal(up.seen[0]!.url, '/v2/?a=%2B&b=%3d');
  t.equal(up.seen[0]!.headers.host, `localhost:${tb.port}`, 'Host is the URI authority (RFC 9112 §3.2.2)');
});

t.test('an asterisk-form target is refused', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const reply = await rawExchange(tb, `OPTIONS * HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 400 /);
  t.equal(up.seen.length, 0, 'nothing reached the upstream');
});
