import http from 'node:http';
import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, waitForLog, type TestBerth } from '../helpers/berth.js';
import { startCli, stopCli } from '../helpers/cli.js';
import { ask, rawExchange } from '../helpers/client.js';
import { makeTestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

// With the served names known, no attacker-chosen host reaches the upstream (where it
// would flow into upload Locations and token realms).

t.test('publicOrigin set: Host and SNI must name it, else 421 before the upstream', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, publicOrigin: 'https://registry.example.com' });
  const reached = (): number => up.seen.length;

  const ok = await ask(tb, { path: '/v2/', headers: { host: 'registry.example.com' }, sni: 'registry.example.com' });
  t.equal(ok.status, 200);
  t.equal((await ask(tb, { path: '/v2/', headers: { host: 'REGISTRY.Example.com:443' }, sni: 'registry.example.com' })).status, 200, 'any case, any port');
  t.equal((await ask(tb, { path: '/v2/', headers: { host: 'registry.example.com' }, sni: '' })).status, 200, 'no SNI (a client that connects by address): Host decides');
  const before = reached();

  const wrongHost = await ask(tb, { path: '/v2/lib/app/blobs/uploads/', method: 'POST', headers: { host: 'evil.example' }, sni: 'registry.example.com' });
  t.equal(wrongHost.status, 421, 'another Host: misdirected');
  t.same(JSON.parse(wrongHost.body.toString()), { errors: [{ code: 'DENIED', message: 'berth: this server does not serve that host name', detail: null }] }, 'in the registry error shape');
  t.equal(wrongHost.headers['docker-distribution-api-version'], 'registry/2.0');
  t.equal((await ask(tb, { path: '/v2/', headers: { host: 'registry.example.com.evil.example' }, sni: 'registry.example.com' })).status, 421);
  t.equal((await ask(tb, { path: '/v2/', headers: { host: 'registry.example.com' }, sni: 'evil.example' })).status, 421, 'another SNI: misdirected');
  t.equal((await ask(tb, { path: '/v2/', headers: { host: '127.0.0.1' }, sni: '' })).status, 421, 'an address is not a served name');
  const page = await ask(tb, { path: '/harbor/', headers: { host: 'evil.example' }, sni: 'registry.example.com' });
  t.equal(page.status, 421);
  t.equal(page.body.toString(), 'berth: this server does not serve that host name\n', 'plain text outside /v2/');

  // absolute-form names its own authority, which replaces Host.
  const absolute = await new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: tb.port, servername: 'registry.example.com', ca: tb.pki.ca, checkServerIdentity: () => undefined }, () => {
      socket.write('GET https://evil.example/v2/ HTTP/1.1\r\nHost: registry.example.com\r\nConnection: close\r\n\r\n');
    });
    let reply = '';
    socket.on('data', (d: Buffer) => (reply += d.toString()));
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
  });
  t.match(absolute, /^HTTP\/1\.1 421 /, 'an absolute-form target naming another host: misdirected');

  t.equal(reached(), before, 'no misdirected request reached the upstream');
  const line = await waitForLog(tb, (l) => l.msg === 'request' && l.status === 421);
  t.match(line, { error: 'misdirected', errorDetail: /^(Host|SNI) / });
});

t.test('serverNames: exact names and one-label wildcards', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, serverNames: ['a.example', '*.b.example', '10.0.0.5'] });
  const status = async (host: string): Promise<number> => (await ask(tb, { path: '/v2/', headers: { host }, sni: '' })).status;
  t.equal(await status('a.example'), 200);
  t.equal(await status(`x.b.example:${tb.port}`), 200, 'on the port berth listens on');
  t.equal(await status('10.0.0.5'), 200, 'a listed address');
  t.equal(await status('b.example'), 421, 'the wildcard does not cover its parent');
  t.equal(await status('y.x.b.example'), 421, 'nor two labels');
  t.equal(await status('localhost'), 421);
  t.equal((await ask(tb, { path: '/v2/', headers: { host: 'a.example' }, sni: 'c.b.example' })).status, 200, 'SNI and Host may be different served names');
});

t.test('unset: any host is served, and berth says once that names are not enforced', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url });
  t.equal((await ask(tb, { path: '/v2/', headers: { host: 'anything.example' }, sni: 'anything.example' })).status, 200);

  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  t.equal(berth.lines.filter((l) => String(l.msg).includes('host names are not enforced')).length, 1, 'one warning, not one per worker');
  t.equal(await stopCli(berth.child), 0);
});

t.test('the HTTP listener does not redirect to a host it does not serve', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--server-names', 'registry.example.com', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const httpPort = Number(/:(\d+)$/.exec(String(berth.lines.find((l) => l.msg === 'berth is serving')!.http))![1]);
  const get = (host: string): Promise<{ status: number; location: string | undefined }> =>
    new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: httpPort, path: '/x', headers: { host }, agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, location: res.headers.location });
      }).on('error', reject);
    });
  t.same(await get('registry.example.com'), { status: 308, location: `https://registry.example.com:${berth.port}/x` });
  t.same(await get('evil.example'), { status: 421, location: undefined });
  t.equal(await stopCli(berth.child), 0);
});

t.test('Host: missing, repeated, on a port berth is not reached on', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    // As a registry told "https" would: an upload URL on the Host it got.
    res.writeHead(202, { location: `https://${req.headers.host}/v2/a/blobs/uploads/u1?_state=s%2Bx` }).end();
  });
  const tb = await startTestBerth(t, { upstream: up.url, publicOrigin: 'https://registry.example.com' });
  const reached = (): string[] => up.seen.map((s) => `${s.url} ${s.headers.host}`);

  // HTTP/1.0 without Host: publicOrigin's authority stands in (the upstream never builds URLs on its own).
  const old = await asRegistry(tb, 'POST /v2/a/blobs/uploads/ HTTP/1.0\r\nContent-Length: 0\r\n\r\n', (r) => r.includes('\r\n\r\n'));
  t.match(old, /^HTTP\/1\.1 202 /);
  t.match(old, /\r\nlocation: https:\/\/registry\.example\.com\/v2\/a\/blobs\/uploads\/u1\?_state=s%2Bx\r\n/i, 'the Location is on the public origin, query byte-exact');
  t.same(reached(), ['/v2/a/blobs/uploads/ registry.example.com']);

  const twice = await asRegistry(tb, 'GET /v2/ HTTP/1.1\r\nHost: registry.example.com\r\nHost: evil.example\r\n\r\n');
  t.match(twice, /^HTTP\/1\.1 400 /, 'two Host lines: 400');
  t.match(twice, /no Host header, or more than one/);

  for (const [host, status] of [
    ['registry.example.com:9999', 421],
    ['registry.example.com:443', 202],
    [`registry.example.com:${tb.port}`, 202],
  ] as const) {
    const reply = await asRegistry(tb, `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\n\r\n`);
    t.match(reply, new RegExp(`^HTTP/1\\.1 ${status} `), `Host ${host}: ${status}`);
  }
  t.notOk(reached().some((r) => r.includes(':9999')), 'the unserved port never reached the upstream');
});

t.test('without publicOrigin: no Host is 400; https Locations on the upstream authority are rewritten', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(202, { location: `https://127.0.0.1:${up.port}/v2/a/blobs/uploads/u1?_state=a%3D%3D` }).end();
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const old = await rawExchange(tb, 'GET /v2/ HTTP/1.0\r\n\r\n', (r) => r.includes('\r\n\r\n'));
  t.match(old, /^HTTP\/1\.1 400 /, 'HTTP/1.0 without Host and no publicOrigin: 400');
  t.equal(up.seen.length, 0, 'never forwarded with the upstream authority');
  const answer = await ask(tb, { path: '/v2/a/blobs/uploads/', method: 'POST' });
  t.equal(answer.headers.location, `https://localhost:${tb.port}/v2/a/blobs/uploads/u1?_state=a%3D%3D`, 'an https Location on the upstream authority: on the public origin');
});

t.test('absolute-form with an empty path asks for "/"', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const reply = await rawExchange(tb, `GET http://localhost:${tb.port}?x=1 HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 200 /);
  t.equal(up.seen[0]?.url, '/?x=1');
});

/** A raw exchange on a TLS connection whose SNI is registry.example.com (the test certificate is for localhost: only the CA is checked). */
function asRegistry(tb: TestBerth, bytes: string, done: (reply: string) => boolean = (r) => r.includes('\r\n\r\n')): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = '';
    const socket = tls.connect({ host: '127.0.0.1', port: tb.port, servername: 'registry.example.com', ca: tb.pki.ca, checkServerIdentity: () => undefined }, () => socket.write(bytes));
    socket.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      if (done(reply)) {
        socket.destroy();
        resolve(reply);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
  });
}
