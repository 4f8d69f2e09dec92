import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

/** The upstream answers each path with the status and Location the test asks for, in query-free form. */
t.test('Location headers on 201, 202, 204 and 3xx', async (t) => {
  const state = '_state=aGVsbG8%2Bd29ybGQ%3D%3D&x=%2F%2f';
  let answers: Record<string, [number, string]> = {};
  const up = await startUpstream(t, (req, res) => {
    const [status, location] = answers[req.url!] ?? [404, ''];
    if (location) res.setHeader('Location', location);
    res.writeHead(status).end();
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const pub = tb.origin;
  const upstreamBase = `http://127.0.0.1:${up.port}`;
  answers = {
    '/201': [201, `${upstreamBase}/v2/x/blobs/sha256:abc`],
    '/202': [202, `${upstreamBase}/v2/x/blobs/uploads/u1?${state}`],
    '/204': [204, `${upstreamBase}/v2/x/blobs/uploads/u1?${state}`],
    '/307': [307, `${upstreamBase}/v2/x/blobs/sha256:abc`],
    '/302-public-http': [302, `http://localhost:${tb.port}/v2/x/blobs/uploads/u2?${state}`],
    '/202-public-http-no-port': [202, `http://localhost/v2/x/blobs/uploads/u3?${state}`],
    '/307-object-storage': [307, 'https://bucket.s3.example.com/docker/registry/v2/blobs/ab/cd/data?X-Amz-Signature=a%2Bb&X-Amz-Expires=1200'],
    '/307-other-http': [307, 'http://minio.internal:9000/blobs/data?sig=a%2B'],
    '/202-relative': [202, `/v2/x/blobs/uploads/u4?${state}`],
    '/200-not-rewritten': [200, `${upstreamBase}/v2/x`],
    '/202-scheme-relative': [202, `//127.0.0.1:${up.port}/v2/x/blobs/uploads/u5?${state}`],
    '/202-upstream-host-other-port': [202, `http://127.0.0.1:1/v2/x`],
    '/202-userinfo': [202, `http://user@127.0.0.1:${up.port}/v2/x`],
  };
  const cases: [path: string, expected: string][] = [
    ['/201', `${pub}/v2/x/blobs/sha256:abc`],
    ['/202', `${pub}/v2/x/blobs/uploads/u1?${state}`],
    ['/204', `${pub}/v2/x/blobs/uploads/u1?${state}`],
    ['/307', `${pub}/v2/x/blobs/sha256:abc`],
    ['/302-public-http', `${pub}/v2/x/blobs/uploads/u2?${state}`],
    ['/202-public-http-no-port', `${pub}/v2/x/blobs/uploads/u3?${state}`],
    ['/307-object-storage', answers['/307-object-storage']![1]],
    ['/307-other-http', answers['/307-other-http']![1]],
    ['/202-relative', answers['/202-relative']![1]],
    ['/200-not-rewritten', answers['/200-not-rewritten']![1]],
    ['/202-scheme-relative', `${pub}/v2/x/blobs/uploads/u5?${state}`],
    ['/202-upstream-host-other-port', answers['/202-upstream-host-other-port']![1]],
    ['/202-userinfo', answers['/202-userinfo']![1]],
  ];
  for (const [path, expected] of cases) {
    const answer = await ask(tb, { path });
    t.equal(answer.status, answers[path]![0], `${path}: status passed through`);
    t.equal(answer.headers.location, expected, `${path}: Location`);
  }
});

t.test('a configured public origin is used instead of Host', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(202, { Location: `http://127.0.0.1:${(_req.socket.localPort)}/v2/y/blobs/uploads/z?_state=q%3D` }).end());
  // localhost is served too (serverNames), so the request (Host localhost:PORT) is answered.
  const tb = await startTestBerth(t, { upstream: up.url, publicOrigin: 'https://registry.example.com', serverNames: ['localhost'] });
  const answer = await ask(tb, { method: 'POST', path: '/v2/y/blobs/uploads/' });
  t.equal(answer.headers.location, 'https://registry.example.com/v2/y/blobs/uploads/z?_state=q%3D');
});
