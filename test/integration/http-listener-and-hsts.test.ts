import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { startCli, stopCli } from '../helpers/cli.js';
import { ask, bodyAfterAnswer } from '../helpers/client.js';
import { makeTestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

function plain(port: number, method: string, path: string, host: string | undefined, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = host === undefined ? {} : { host };
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, setHost: host !== undefined }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

for (const workers of ['1', '2']) {
  t.test(`workers ${workers}: the HTTP listener redirects to https, and refuses registry requests`, async (t) => {
    const up = await startUpstream(t, (_req, res) => res.end('{}'));
    const pki = await makeTestPki();
    const berth = await startCli(['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
    t.teardown(() => void berth.child.kill('SIGKILL'));
    const serving = berth.lines.find((l) => l.msg === 'berth is serving')!;
    const httpPort = Number(/:(\d+)$/.exec(String(serving.http))![1]);

    const page = await plain(httpPort, 'GET', '/harbor/projects?a=%2F%2f&b=c+d', `Registry.Example.com:${httpPort}`);
    t.equal(page.status, 308, '308: the method and body would be kept');
    t.equal(page.headers.location, `https://registry.example.com:${berth.port}/harbor/projects?a=%2F%2f&b=c+d`, 'same host on the https port, path and query byte-exact');

    for (const [method, path] of [['GET', '/v2/'], ['POST', '/v2/lib/app/blobs/uploads/'], ['HEAD', '/v2/lib/app/manifests/v1']] as const) {
      const refused = await plain(httpPort, method, path, `localhost:${httpPort}`, method === 'POST' ? 'body' : undefined);
      t.equal(refused.status, 400, `${method} ${path}: not redirected`);
      t.equal(refused.headers['docker-distribution-api-version'], 'registry/2.0');
      t.equal(refused.headers.location, undefined);
      if (method !== 'HEAD') {
        t.same(JSON.parse(refused.body), {
          errors: [{ code: 'UNSUPPORTED', message: `berth: this registry is served over https only: use https://localhost:${berth.port}/v2/`, detail: null }],
        });
      }
    }
    t.equal((await plain(httpPort, 'GET', '/', 'evil.example/x?')).status, 400, 'a Host that is not a host is not redirected to');
    t.equal((await plain(httpPort, 'GET', '/', undefined)).status, 400, 'no Host, nowhere to send the client');
    t.equal(await stopCli(berth.child), 0, 'the HTTP listener stops with berth');
  });
}

t.test('with publicOrigin, redirects go there', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--public-origin', 'https://registry.example.com', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const httpPort = Number(/:(\d+)$/.exec(String(berth.lines.find((l) => l.msg === 'berth is serving')!.http))![1]);
  t.equal((await plain(httpPort, 'GET', '/account/sign-in', 'registry.example.com:8080')).headers.location, 'https://registry.example.com/account/sign-in');
  // Another host: 421 in the shape berth's TLS listener answers with (sendError), never a redirect.
  const registry = await plain(httpPort, 'GET', '/v2/', 'other.example.com');
  t.equal(registry.status, 421);
  t.equal(registry.headers['docker-distribution-api-version'], 'registry/2.0');
  t.same(JSON.parse(registry.body), { errors: [{ code: 'DENIED', message: 'berth: this server does not serve that host name', detail: null }] });
  const page = await plain(httpPort, 'GET', '/account/sign-in', 'other.example.com');
  t.equal(page.status, 421);
  t.equal(page.headers.location, undefined);
  t.equal(page.body, 'berth: this server does not serve that host name\n');
  t.equal(await stopCli(berth.child), 0);
});

t.test('HSTS on https answers for named hosts only', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/own') return void res.writeHead(200, { 'strict-transport-security': 'max-age=5' }).end('{}');
    res.end('{}');
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const hsts = async (host: string, path = '/v2/'): Promise<string | string[] | undefined> =>
    (await ask(tb, { path, headers: { host } })).headers['strict-transport-security'];
  t.equal(await hsts('registry.example.com'), 'max-age=31536000', 'a named host: one year by default');
  t.equal(await hsts('registry.example.com:8443'), 'max-age=31536000');
  t.equal(await hsts(`localhost:${tb.port}`), undefined, 'localhost: none');
  t.equal(await hsts('dev.localhost'), undefined);
  t.equal(await hsts('127.0.0.1'), undefined, 'an IP address: none');
  t.equal(await hsts('[::1]:8443'), undefined);
  t.equal(await hsts('registry.example.com', '/own'), 'max-age=5', "the upstream's own header is kept, not doubled");

  const dead = await startTestBerth(t, { upstream: 'http://127.0.0.1:9', 'hsts.maxAge': '1h' });
  const answer = await ask(dead, { path: '/v2/', headers: { host: 'registry.example.com' } });
  t.equal(answer.status, 502);
  t.equal(answer.headers['strict-transport-security'], 'max-age=3600', "on berth's own answers too, as configured");

  const off = await startTestBerth(t, { upstream: up.url, 'hsts.maxAge': '0' });
  t.equal((await ask(off, { path: '/v2/', headers: { host: 'registry.example.com' } })).headers['strict-transport-security'], undefined, '0 turns it off');

  const dev = await startTestBerth(t, { upstream: up.url }, { devCa: '/tmp/dev-ca.crt' });
  t.equal((await ask(dev, { path: '/v2/', headers: { host: 'registry.example.com' } })).headers['strict-transport-security'], undefined, 'never with the development certificate');
});

t.test('a push sent to the HTTP listener reads its refusal, not a reset: the body is read and dropped, then the connection closes', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const httpPort = Number(/:(\d+)$/.exec(String(berth.lines.find((l) => l.msg === 'berth is serving')!.http))![1]);
  const total = 8 << 20;
  for (const [path, status] of [['/v2/lib/app/blobs/uploads/u', 400], ['/api/v2.0/projects', 308]] as const) {
    const socket = net.connect(httpPort, '127.0.0.1');
    await once(socket, 'connect');
    const r = await bodyAfterAnswer(socket, `PATCH ${path} HTTP/1.1\r\nHost: localhost:${httpPort}\r\n`, total);
    t.match(r.reply, new RegExp(`^HTTP/1\\.1 ${status} `), `${path}: the ${status} arrives while the body is still being sent`);
    t.match(r.reply, /\r\nconnection: close\r\n/i, `${path}: and says the connection will close`);
    t.same(r.errors, [], `${path}: the rest of the body goes out without a reset or EPIPE`);
    t.equal(r.sent, total, `${path}: all of it`);
    t.ok(r.endedByServer, `${path}: berth closes the connection once the body is in`);
  }
  t.equal(await stopCli(berth.child), 0);
});

t.test('the HTTP listener has the overall connection cap too (limits.connections)', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile], { env: { BERTH_LIMITS_CONNECTIONS: '3' } });
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const httpPort = Number(/:(\d+)$/.exec(String(berth.lines.find((l) => l.msg === 'berth is serving')!.http))![1]);
  const open: net.Socket[] = [];
  t.teardown(() => open.forEach((s) => s.destroy()));
  for (let i = 0; i < 3; i++) {
    const socket = net.connect(httpPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`GET /kept/${i} HTTP/1.1\r\nHost: localhost:${httpPort}\r\n\r\n`);
    const [reply] = (await once(socket, 'data')) as [Buffer];
    t.match(reply.toString(), /^HTTP\/1\.1 308 /, `connection ${i} redirected and kept alive`);
    open.push(socket);
  }
  const over = await plain(httpPort, 'GET', '/', `localhost:${httpPort}`).then((r) => String(r.status), (err: NodeJS.ErrnoException) => err.code ?? err.message);
  t.match(over, /^(ECONNRESET|socket hang up)$/, `the 4th connection is closed at once (${over})`);
  open.pop()!.destroy();
  let status = 0;
  for (let i = 0; i < 100 && status !== 308; i++) {
    status = await plain(httpPort, 'GET', '/', `localhost:${httpPort}`).then((r) => r.status, () => 0);
    if (status !== 308) await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(status, 308, 'a slot freed is a slot to use');
  open.forEach((s) => s.destroy());
  t.equal(await stopCli(berth.child), 0);
});
