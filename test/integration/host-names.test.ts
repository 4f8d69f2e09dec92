import http from 'node:http';
import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { startCli, stopCli } from '../helpers/cli.js';
import { ask } from '../helpers/client.js';
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
  t.equal(await status('x.b.example:8443'), 200);
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
