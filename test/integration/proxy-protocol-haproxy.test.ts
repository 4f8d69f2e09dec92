import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { startTestBerth, waitForLog, type TestBerth } from '../helpers/berth.js';
import { freePort, listensOn, onFreePort } from '../helpers/ports.js';
import { startUpstream } from '../helpers/upstream.js';

// berth behind a real L4 balancer: HAProxy from Debian in TCP mode, sending PROXY
// protocol v2 (send-proxy-v2) on one frontend and v1 (send-proxy) on another. Clients
// connect from 127.0.0.2 and 127.0.0.3; HAProxy reaches berth from 127.0.0.1.

const haveHaproxy = spawnSync('sh', ['-c', 'command -v haproxy']).status === 0;
const skip = haveHaproxy ? false : process.env.CI ? false : 'haproxy is not installed (apt-get install haproxy); CI installs it';


function startHaproxy(t: Test, berthPort: number): Promise<{ v1: number; v2: number }> {
  return onFreePort(async (v2) => startHaproxyOn(t, berthPort, { v1: await freePort(), v2 }));
}

async function startHaproxyOn(t: Test, berthPort: number, ports: { v1: number; v2: number }): Promise<{ v1: number; v2: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-haproxy-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    `defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend v2
  bind 127.0.0.1:${ports.v2}
  default_backend berth_v2
backend berth_v2
  server berth 127.0.0.1:${berthPort} send-proxy-v2
frontend v1
  bind 127.0.0.1:${ports.v1}
  default_backend berth_v1
backend berth_v1
  server berth 127.0.0.1:${berthPort} send-proxy
`,
  );
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(() => void child.kill('SIGKILL'));
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(ports.v2, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
    });
    // Both frontends HAProxy's own: a port another process took first is tried again elsewhere.
    if (up && listensOn(child.pid!, ports.v1) && listensOn(child.pid!, ports.v2)) return ports;
    if (i > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`haproxy did not start: ${stderr || (up ? 'a port taken by another process' : '')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET over TLS to `port`, from a chosen local address; resolves with the status, or the error code. */
function get(tb: TestBerth, port: number, from: string, path: string, prefix?: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => {
      if (prefix) raw.write(prefix);
      const socket = tls.connect({ socket: raw, servername: 'localhost', ca: tb.pki.ca }, () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n\r\n`);
      });
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('end', () => resolve(reply.split('\r\n')[0]!));
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    raw.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

t.test('PROXY protocol v1 and v2 from HAProxy: the client address is the one HAProxy saw', { skip }, async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'proxyProtocol.from': '127.0.0.1/32', 'limits.connectionsPerClient': '0' });
  const haproxy = await startHaproxy(t, tb.port);

  t.equal(await get(tb, haproxy.v2, '127.0.0.2', '/v2/through-v2'), 'HTTP/1.1 200 OK', 'through send-proxy-v2');
  t.equal(await get(tb, haproxy.v1, '127.0.0.3', '/v2/through-v1'), 'HTTP/1.1 200 OK', 'through send-proxy');
  const v2 = up.seen.find((s) => s.url === '/v2/through-v2')!;
  const v1 = up.seen.find((s) => s.url === '/v2/through-v1')!;
  t.equal(v2.headers['x-forwarded-for'], '127.0.0.2', 'v2: the upstream is told the real client');
  t.equal(v1.headers['x-forwarded-for'], '127.0.0.3', 'v1: likewise');
  t.match(await waitForLog(tb, (l) => l.path === '/v2/through-v2'), { client: '127.0.0.2' }, 'and the access log');

  t.equal(await get(tb, tb.port, '127.0.0.1', '/v2/direct'), 'HTTP/1.1 200 OK', 'a trusted source may also connect without a header');
  t.equal(up.seen.find((s) => s.url === '/v2/direct')!.headers['x-forwarded-for'], '127.0.0.1');

  const before = up.seen.length;
  const spoof = Buffer.from('PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n');
  t.not(await get(tb, tb.port, '127.0.0.2', '/v2/spoofed', spoof), 'HTTP/1.1 200 OK', 'from an untrusted source a PROXY header is not read: the handshake fails');
  t.not(await get(tb, tb.port, '127.0.0.1', '/v2/garbage', Buffer.from('PROXY TCP4 nonsense\r\n')), 'HTTP/1.1 200 OK', 'a malformed header from a trusted source closes the connection');
  t.equal(up.seen.length, before, 'neither reached the upstream');
  t.equal(await get(tb, haproxy.v2, '127.0.0.2', '/v2/after'), 'HTTP/1.1 200 OK', 'berth keeps serving');
});

t.test('connection caps count the client HAProxy names, not HAProxy', { skip }, async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'proxyProtocol.from': '127.0.0.1', 'limits.connectionsPerClient': '1' });
  const haproxy = await startHaproxy(t, tb.port);
  // Hold one connection from 127.0.0.2 open through HAProxy.
  const raw = net.connect({ host: '127.0.0.1', port: haproxy.v2, localAddress: '127.0.0.2' });
  await once(raw, 'connect');
  const held = tls.connect({ socket: raw, servername: 'localhost', ca: tb.pki.ca });
  await once(held, 'secureConnect');
  t.teardown(() => void held.destroy());
  t.equal(await get(tb, haproxy.v2, '127.0.0.2', '/v2/second'), 'HTTP/1.1 429 Too Many Requests', "127.0.0.2's second connection is over its cap");
  t.equal(await get(tb, haproxy.v2, '127.0.0.3', '/v2/other'), 'HTTP/1.1 200 OK', 'another client through the same HAProxy is not');
});
