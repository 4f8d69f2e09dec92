import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('one access line per request, with the upload UUID and no secrets', async (t) => {
  const up = await startUpstream(t, (_req, res) =>
    res.writeHead(202, { 'Docker-Upload-UUID': '0f6c2a57-uuid', Location: '/v2/a/blobs/uploads/0f6c2a57-uuid?_state=next%3D' }).end('accepted'),
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, {
    method: 'PATCH',
    path: '/v2/a/blobs/uploads/0f6c2a57-uuid?_state=c2VjcmV0%3D%3D',
    headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig', cookie: 'session=cookie-secret', 'content-length': '11' },
    body: 'hello world',
  });
  const line = await waitForLog(tb, (l) => l.msg === 'request');
  t.match(line, {
    method: 'PATCH',
    path: '/v2/a/blobs/uploads/0f6c2a57-uuid?_state=REDACTED',
    status: 202,
    bytesIn: 11,
    bytesOut: 8,
    client: '127.0.0.1',
    uploadUuid: '0f6c2a57-uuid',
  });
  t.type(line.durationMs, 'number');
  const all = JSON.stringify(tb.logs);
  for (const secret of ['eyJhbGciOiJIUzI1NiJ9', 'cookie-secret', 'c2VjcmV0', 'next%3D']) t.notMatch(all, secret, `${secret} not logged`);
  t.equal(tb.logs.filter((l) => l.msg === 'request').length, 1, 'exactly one line');
});

t.test('the POST that starts an upload is logged with the UUID the registry answered', async (t) => {
  const up = await startUpstream(t, (_req, res) =>
    res.writeHead(202, { 'Docker-Upload-UUID': '7d1e-started', Location: '/v2/a/blobs/uploads/7d1e-started?_state=s', 'Content-Length': '0' }).end(),
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, { method: 'POST', path: '/v2/a/blobs/uploads/' });
  const line = await waitForLog(tb, (l) => l.msg === 'request');
  t.match(line, { method: 'POST', path: '/v2/a/blobs/uploads/', status: 202, uploadUuid: '7d1e-started' });
});

const jwt = (claims: object): string => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2lnbmF0dXJl`;

t.test('the access line names the client, the user, the repository and reference, the upstream\'s time and a request id the upstream got too', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/v2/team/app/manifests/')) return void setTimeout(() => res.writeHead(200, { 'content-length': '2' }).end('{}'), 50);
    res.writeHead(202, { 'content-length': '0' }).end();
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const basic = `Basic ${Buffer.from('alice:s3cret-pass').toString('base64')}`;
  await ask(tb, { path: '/v2/team/app/manifests/1.4', headers: { authorization: basic, 'user-agent': 'docker/27.1.1 go/go1.22.5 os/linux', 'x-request-id': 'from-the-client' } });
  const manifest = await waitForLog(tb, (l) => l.msg === 'request' && l.path === '/v2/team/app/manifests/1.4');
  t.match(manifest, { user: 'alice', userAgent: 'docker/27.1.1 go/go1.22.5 os/linux', repository: 'team/app', reference: '1.4', status: 200 });
  t.ok((manifest.upstreamMs as number) >= 45, `the upstream's time to its answer (${String(manifest.upstreamMs)} ms; it waited 50)`);
  t.match(manifest.requestId, /^[0-9a-f-]{36}$/, 'a new request id: the client is not a trusted proxy');
  t.equal(up.seen[0]!.headers['x-request-id'], manifest.requestId, 'the upstream got the same id, and not the client\'s');

  const digest = `sha256:${'a'.repeat(64)}`;
  await ask(tb, { method: 'PUT', path: `/v2/library/alpine/blobs/uploads/u-1?_state=x&digest=${digest}`, headers: { authorization: `Bearer ${jwt({ sub: 'robot$ci', access: [] })}`, 'content-length': '0' } });
  const put = await waitForLog(tb, (l) => l.msg === 'request' && l.method === 'PUT');
  t.match(put, { user: 'robot$ci', repository: 'library/alpine', uploadUuid: 'u-1' }, 'a bearer token\'s sub claim, read without trusting it');
  t.notOk('reference' in put, 'an upload names no reference');
  for (const [path, repository, reference] of [
    [`/v2/a/b/c/blobs/${digest}`, 'a/b/c', digest],
    ['/v2/library/alpine/tags/list?n=10', 'library/alpine', undefined],
    ['/v2/', undefined, undefined],
  ] as const) {
    await ask(tb, { method: 'HEAD', path });
    const line = await waitForLog(tb, (l) => l.msg === 'request' && l.path === path);
    t.equal(line.repository, repository, `${path}: repository`);
    t.equal(line.reference, reference, `${path}: reference`);
  }
  const all = JSON.stringify(tb.logs);
  for (const secret of ['s3cret-pass', 'c2lnbmF0dXJl', Buffer.from('alice:s3cret-pass').toString('base64')]) t.notMatch(all, secret, 'no password, token or credentials logged');
});

t.test('a request id from a trusted proxy is kept, in the log and upstream; a malformed one is replaced', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(200, { 'content-length': '0' }).end());
  const tb = await startTestBerth(t, { upstream: up.url, trustedProxies: ['127.0.0.0/8'] });
  await ask(tb, { path: '/v2/kept', headers: { 'x-request-id': 'lb-7f3a9c:1' } });
  t.match(await waitForLog(tb, (l) => l.path === '/v2/kept'), { requestId: 'lb-7f3a9c:1' });
  t.equal(up.seen[0]!.headers['x-request-id'], 'lb-7f3a9c:1');
  await ask(tb, { path: '/v2/replaced', headers: { 'x-request-id': 'two words' } });
  const replaced = await waitForLog(tb, (l) => l.path === '/v2/replaced');
  t.match(replaced.requestId, /^[0-9a-f-]{36}$/, 'not a token: replaced');
  t.equal(up.seen[1]!.headers['x-request-id'], replaced.requestId);
});

t.test('a request berth answers itself still has a request id in its line', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end());
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, { method: 'TRACE', path: '/v2/' });
  const line = await waitForLog(tb, (l) => l.msg === 'request' && l.method === 'TRACE');
  t.match(line, { status: 405, requestId: /^[0-9a-f-]{36}$/ });
  t.equal(up.seen.length, 0);
});
