import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { startCli, stopCli } from '../helpers/cli.js';
import { makeTestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/wait.js';

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
  const open1 = /berth_open_connections (\d+)/;
  const openNow = async (): Promise<number> => Number(open1.exec(await tb.berth.registry.getSingleMetricAsString('berth_open_connections'))?.[1]);
  t.ok(await until(async () => (await openNow()) === 1), 'berth sees the close');
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

t.test('caps act at accept: a flood of idle connections cannot take the file descriptors', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const pki = await makeTestPki();
  // 512 descriptors for the whole process: without caps at accept, 600 idle connections
  // (no handshake, no request) exhaust them, and the kernel's accept then fails silently.
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile], {
    wrapper: ['prlimit', '--nofile=512:512'],
    env: { BERTH_LIMITS_CONNECTIONS_PER_CLIENT: '16' },
  });
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const lowered = berth.lines.find((l) => String(l.msg).startsWith('limits.connections lowered'));
  t.match(lowered, { level: 40, fileDescriptors: 512, connections: 160 }, 'the cap is lowered to what 512 descriptors allow, with a warning');

  const idle: net.Socket[] = [];
  t.teardown(() => idle.forEach((s) => s.destroy()));
  let closedByBerth = 0;
  for (let i = 0; i < 600; i++) {
    const socket = net.connect({ port: berth.port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    socket.on('close', () => closedByBerth++);
    idle.push(socket);
    await once(socket, 'connect').catch(() => undefined);
  }
  await until(() => closedByBerth >= 600 - 16 - 64);
  t.ok(closedByBerth >= 600 - 16 - 64, `connections past the caps and the pending refusals were closed at once (${closedByBerth})`);
  const fds = fs.readdirSync(`/proc/${berth.child.pid}/fd`).length;
  t.ok(fds < 200, `berth holds ${fds} descriptors`);
  await berth.waitForLine((l) => l.msg === 'connection caps reached and refusals pending: new connections are closed at once');

  // Another client, from another address, is still served.
  const other = await new Promise<string>((resolve, reject) => {
    let reply = '';
    const tcp = net.connect({ host: '127.0.0.1', localAddress: '127.0.0.2', port: berth.port });
    const socket = tls.connect({ socket: tcp, servername: 'localhost', ca: pki.ca }, () => {
      socket.write(`GET /v2/ HTTP/1.1\r\nHost: localhost:${berth.port}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (d: Buffer) => (reply += d.toString()));
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
  });
  t.match(other, /^HTTP\/1\.1 200 /, 'a client from another address is served meanwhile');
  idle.forEach((s) => s.destroy());
  t.equal(await stopCli(berth.child), 0);
});
