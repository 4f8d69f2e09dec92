import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask, rawExchange } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('hop-by-hop headers are removed on the way in', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, {
    method: 'PUT',
    path: '/v2/x',
    headers: {
      connection: 'x-hop, keep-alive',
      'x-hop': 'secret',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      upgrade: 'h2c',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'proxy-connection': 'keep-alive',
      'x-end-to-end': 'kept',
      'content-length': '5',
    },
    body: 'hello',
  });
  const h = up.seen[0]!.headers;
  for (const name of ['x-hop', 'keep-alive', 'te', 'upgrade', 'proxy-authorization', 'proxy-connection', 'trailer']) {
    t.equal(h[name], undefined, `${name} removed`);
  }
  t.not(h.connection, 'x-hop, keep-alive', 'the client Connection header is not forwarded');
  t.equal(h['x-end-to-end'], 'kept', 'end-to-end headers kept');
  t.equal(h['content-length'], '5', 'framing kept');
  t.equal(up.seen[0]!.body.toString(), 'hello');
});

t.test('Connection cannot name a framing header away', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, { method: 'PUT', path: '/v2/y', headers: { connection: 'content-length', 'content-length': '5' }, body: 'hello' });
  t.equal(up.seen[0]!.headers['content-length'], '5');
  t.equal(up.seen[0]!.body.toString(), 'hello');
  t.equal(up.seen.length, 1, 'the upstream saw exactly one request');
});

t.test('hop-by-hop headers are removed on the way out', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.setHeader('Connection', 'x-resp-hop');
    res.setHeader('X-Resp-Hop', '1');
    res.setHeader('Keep-Alive', 'timeout=1');
    res.setHeader('Proxy-Authenticate', 'Basic');
    res.setHeader('Trailer', 'X-Checksum');
    res.setHeader('Upgrade', 'h2c');
    res.setHeader('Docker-Distribution-Api-Version', 'registry/2.0');
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.end('body');
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const answer = await ask(tb, { path: '/v2/' });
  for (const name of ['x-resp-hop', 'proxy-authenticate', 'trailer', 'upgrade']) t.equal(answer.headers[name], undefined, `${name} removed`);
  t.not(answer.headers['keep-alive'], 'timeout=1', "the upstream's Keep-Alive is not passed on");
  t.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
  t.same(answer.headers['set-cookie'], ['a=1', 'b=2'], 'repeated headers kept as they were');
  t.equal(answer.body.toString(), 'body');
});

t.test('a Trailer header on a bodiless request does not crash berth (http-party/node-http-proxy#1647)', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const reply = await rawExchange(
    tb,
    `GET /v2/ HTTP/1.1\r\nHost: localhost:${tb.port}\r\nTrailer: X-Checksum\r\nTE: trailers\r\n\r\n`,
    (r) => /\r\n\r\nok$/.test(r),
  );
  t.match(reply, /^HTTP\/1\.1 200 /);
  t.equal(up.seen[0]!.headers.trailer, undefined);
  const again = await ask(tb, { path: '/v2/' });
  t.equal(again.status, 200, 'berth keeps serving');
});
