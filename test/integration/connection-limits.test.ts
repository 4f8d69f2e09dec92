import { once } from 'node:events';
import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { startUpstream } from '../helpers/upstream.js';

/** A kept-alive TLS connection; get() sends one request on it and resolves with the raw answer. */
async function open(tb: TestBerth): Promise<{ socket: tls.TLSSocket; get(path: string): Promise<string> }> {
  const socket = tls.connect({ host: '127.0.0.1', port: tb.port, servername: 'localhost', ca: tb.pki.ca });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  return {
    socket,
    get: (path) =>
      new Promise((resolve) => {
        let reply = '';
        const onData = (d: Buffer): void => {
          reply += d.toString();
          const end = reply.indexOf('\r\n\r\n');
          const length = Number(/content-length: (\d+)/i.exec(reply)?.[1] ?? 0);
          if (end >= 0 && reply.length >= end + 4 + length) {
            socket.off('data', onData);
            resolve(reply);
          }
        };
        socket.on('data', onData);
        socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n`);
      }),
  };
}

t.test('per client address: the connection over the cap is answered 429 and closed', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'limits.connectionsPerClient': '2', 'limits.connections': '0' });
  const first = await open(tb);
  const second = await open(tb);
  t.match(await first.get('/v2/a'), /^HTTP\/1\.1 200 /);
  t.match(await second.get('/v2/b'), /^HTTP\/1\.1 200 /);
  const reached = up.seen.length;

  const third = await open(tb);
  const closed = once(third.socket, 'close');
  const refused = await third.get('/v2/lib/app/blobs/uploads/');
  t.match(refused, /^HTTP\/1\.1 429 /, '429');
  t.match(refused, /\r\nretry-after: 5\r\n/i, 'with Retry-After');
  t.match(refused, /\r\nconnection: close\r\n/i);
  t.match(refused, /"code":"TOOMANYREQUESTS"/, 'in the registry error shape');
  await closed;
  t.pass('and closed');
  t.equal(up.seen.length, reached, 'the refused request never reached the upstream');
  t.match(await first.get('/v2/c'), /^HTTP\/1\.1 200 /, 'the connections under the cap keep working');

  first.socket.destroy();
  await once(first.socket, 'close');
  await new Promise((r) => setTimeout(r, 50)); // berth sees the close
  const again = await open(tb);
  t.match(await again.get('/v2/d'), /^HTTP\/1\.1 200 /, 'once one closes, a new one is served');
  second.socket.destroy();
  again.socket.destroy();
  t.match(await tb.berth.registry.getSingleMetricAsString('berth_connections_refused_total'), /berth_connections_refused_total\{reason="too_many_client_connections"\} 1/);
});

t.test('overall: the connection over the cap is answered 503', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'limits.connections': '2', 'limits.connectionsPerClient': '0' });
  const held = [await open(tb), await open(tb)];
  const over = await open(tb);
  t.match(await over.get('/v2/'), /^HTTP\/1\.1 503 [\s\S]*retry-after: 5/i);
  for (const c of held) t.match(await c.get('/v2/'), /^HTTP\/1\.1 200 /);
  for (const c of [...held, over]) c.socket.destroy();
});

t.test('requests per connection: the last allowed answer says "Connection: close", then the connection ends', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'limits.requestsPerConnection': '2' });
  const conn = await open(tb);
  const closed = once(conn.socket, 'close');
  const first = await conn.get('/v2/a');
  t.match(first, /^HTTP\/1\.1 200 /);
  t.match(first, /\r\nconnection: keep-alive\r\n/i, 'the first answer keeps the connection');
  const second = await conn.get('/v2/b');
  t.match(second, /^HTTP\/1\.1 200 /, 'the second request is served');
  t.match(second, /\r\nconnection: close\r\n/i, 'and its answer closes the connection');
  await closed;
  t.equal(up.seen.length, 2, 'both reached the upstream');
  const fresh = await open(tb);
  t.match(await fresh.get('/v2/c'), /^HTTP\/1\.1 200 /, 'a new connection is served');
  fresh.socket.destroy();
});
