import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startCli, stopCli, type RunningCli } from '../helpers/cli.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/wait.js';

// SIGHUP reads the settings again (config file, variables, flags): those that need no new
// listener apply at once in every worker, without dropping a connection; the others are
// named as taking a restart; a config that no longer loads changes nothing.

/** One kept-alive TLS connection; `get` sends a request on it and resolves with the status and the upstream's echo. */
function keepAlive(port: number, pki: TestPki): Promise<{ get(host: string, headers?: string, path?: string): Promise<{ status: number; forwardedFor: string | undefined; connection: string | undefined }>; close(): void; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'registry.example.com', ca: pki.ca }, () => {
      let buffered = '';
      let waiting: ((reply: string) => void) | undefined;
      socket.on('data', (d: Buffer) => {
        buffered += d.toString('latin1');
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        const reply = buffered.slice(0, end + 4 + length);
        buffered = buffered.slice(end + 4 + length);
        waiting?.(reply);
      });
      resolve({
        get: (host, headers = '', path = '/v2/') =>
          new Promise((ok) => {
            waiting = (reply) =>
              ok({ status: Number(reply.split(' ')[1]), forwardedFor: /x-seen-forwarded-for: ([^\r]*)/i.exec(reply)?.[1], connection: /\r\nconnection: ([^\r]*)/i.exec(reply)?.[1] });
            socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}\r\n`);
          }),
        close: () => socket.destroy(),
        closed: () => closed,
      });
    });
    socket.on('close', () => (closed = true));
    socket.once('error', reject);
  });
}

/** Resolves once `count` lines match. */
async function lines(berth: RunningCli, count: number, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>[]> {
  for (;;) {
    const found = berth.lines.filter(match);
    if (found.length >= count) return found;
    await berth.waitForLine((l) => match(l) && !found.includes(l));
  }
}

for (const workers of [1, 2]) {
  t.test(`workers ${workers}: SIGHUP applies serverNames, trustedProxies, the grace period and log.level at once, and names what takes a restart`, async (t) => {
    const up = await startUpstream(t, (req, res) => res.writeHead(200, { 'content-length': '2', 'x-seen-forwarded-for': String(req.headers['x-forwarded-for']) }).end('{}'));
    const pki = await makeTestPki(['registry.example.com', 'localhost']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reload-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'berth.yaml');
    const write = (settings: string): void => fs.writeFileSync(file, `upstream: ${up.url}\nlisten: 127.0.0.1:0\n${settings}`);
    write('serverNames: [registry.example.com]\n');
    const berth = await startCli(['--config', file, '--workers', String(workers), '--cert', pki.certFile, '--key', pki.keyFile]);
    t.teardown(() => void berth.child.kill('SIGKILL'));

    // Connections to each worker (the kernel spreads them), open across the reload.
    const open = await Promise.all(Array.from({ length: 8 }, () => keepAlive(berth.port, pki)));
    t.teardown(() => open.forEach((c) => c.close()));
    for (const c of open) t.equal((await c.get(`localhost:${berth.port}`)).status, 421, 'before: localhost is not a served name');
    const before = await open[0]!.get('registry.example.com', 'X-Forwarded-For: 10.9.8.7\r\n');
    t.equal(before.forwardedFor, '127.0.0.1', 'before: the peer is not trusted, its X-Forwarded-For is dropped');

    // Live: serverNames, trustedProxies, HSTS, the grace period, log level. Not: the upstream, the header time limit.
    fs.writeFileSync(file, 'upstream: http://127.0.0.1:9\nlisten: 127.0.0.1:0\nserverNames: [registry.example.com, localhost, mirror.example.org]\ntrustedProxies: [127.0.0.0/8]\nlog: { level: debug }\nhsts: { maxAge: 1h }\nshutdown: { grace: 1m }\ntimeouts: { headers: 30s }\n');
    berth.child.kill('SIGHUP');
    const reloaded = await lines(berth, workers, (l) => l.msg === 'settings reloaded');
    for (const line of reloaded) t.same(line.settings, ['serverNames', 'trustedProxies', 'hsts.maxAge', 'shutdown.grace', 'log.level'], 'applied in each serving process');
    const uncovered = await lines(berth, workers, (l) => l.msg === 'the certificate does not cover every name clients use: clients reaching berth by these names will refuse it');
    t.same(uncovered.map((l) => l.uncovered), Array(workers).fill(['mirror.example.org']), 'a new server name the certificate does not cover: warned about, as at start');
    const restart = await lines(berth, workers, (l) => l.msg === 'settings changed that only a restart applies: restart berth to apply them');
    for (const line of restart) t.match(line, { level: 40, settings: ['upstream', 'timeouts.headers'] }, 'the others named, with the restart they take');

    for (const c of open) {
      t.equal((await c.get(`localhost:${berth.port}`)).status, 200, 'after: on a connection opened before the reload, localhost is served');
      t.notOk(c.closed(), 'and the connection was never dropped');
    }
    const after = await open[0]!.get('registry.example.com', 'X-Forwarded-For: 10.9.8.7\r\n');
    t.equal(after.forwardedFor, '10.9.8.7, 127.0.0.1', 'after: 127.0.0.1 is a trusted proxy, its chain is kept');
    t.equal(up.seen.at(-1)?.headers.host, 'registry.example.com', 'still the upstream berth started with (upstream takes a restart)');

    // A config that no longer loads: refused, the settings in service stay.
    fs.writeFileSync(file, 'timeouts: { headers: soon }\n');
    berth.child.kill('SIGHUP');
    const refused = await lines(berth, workers, (l) => l.msg === 'settings not reloaded: the settings in service stay');
    t.match(refused[0], { level: 50, error: /timeouts\.headers/ });
    t.equal((await open[1]!.get(`localhost:${berth.port}`)).status, 200, 'still serving with the reloaded settings');
    t.equal(await stopCli(berth.child), 0);
  });
}

t.test('workers 2: a change of the config file, without SIGHUP, applies connection limits, the upstream time limit and the grace period', async (t) => {
  const hanging: (() => void)[] = [];
  const up = await startUpstream(t, (req, res) => {
    // Never answered while it hangs; ended with the test.
    if (req.url === '/v2/hang') return void hanging.push(() => res.destroy());
    res.writeHead(200, { 'content-length': '2' }).end('{}');
  });
  t.teardown(() => hanging.forEach((end) => end()));
  const pki = await makeTestPki(['registry.example.com', 'localhost']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reload-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'berth.yaml');
  const write = (settings: string): void => fs.writeFileSync(file, `upstream: ${up.url}\nlisten: 127.0.0.1:0\n${settings}`);
  write('');
  const berth = await startCli(['--config', file, '--workers', '2', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const host = `localhost:${berth.port}`;
  // Sixteen connections, spread by the kernel over both workers (all on one: once in 32,768 runs).
  const open = await Promise.all(Array.from({ length: 16 }, () => keepAlive(berth.port, pki)));
  t.teardown(() => open.forEach((c) => c.close()));
  for (const c of open) t.match(await c.get(host), { status: 200, connection: 'keep-alive' });

  write('limits: { connectionsPerClient: 1, requestsPerConnection: 2 }\ntimeouts: { upstreamResponse: 1s }\n');
  const reloaded = await lines(berth, 2, (l) => l.msg === 'settings reloaded');
  for (const line of reloaded) t.same(line.settings, ['timeouts.upstreamResponse', 'limits.connectionsPerClient', 'limits.requestsPerConnection'], 'applied in each worker, from the file alone');
  t.notOk(berth.lines.some((l) => l.msg === 'certificate unchanged'), 'the certificate was not re-read: only SIGHUP forces that');

  const over = await keepAlive(berth.port, pki);
  t.equal((await over.get(host)).status, 429, 'a new connection beside those already open is over the per-client cap (they count, though opened before it)');
  const first = await open[0]!.get(host);
  t.match(first, { status: 200, connection: 'keep-alive' }, 'on a connection opened before: the first request since the reload');
  t.match(await open[0]!.get(host), { status: 200, connection: 'close' }, 'and the second is its last');
  t.ok(await until(() => open[0]!.closed()), 'then that connection closes');
  const started = Date.now();
  t.equal((await open[1]!.get(host, '', '/v2/hang')).status, 504, 'an upstream that does not answer: 504 after the new upstreamResponse, not the 15 minutes berth started with');
  const waited = Date.now() - started;
  t.ok(waited >= 900 && waited < 5000, `after about a second (${waited} ms)`);

  write('limits: { connectionsPerClient: 0 }\ntimeouts: { upstreamResponse: 0 }\nshutdown: { grace: 1s }\n');
  const again = await lines(berth, 4, (l) => l.msg === 'settings reloaded');
  for (const line of again.slice(2)) t.same(line.settings, ['timeouts.upstreamResponse', 'limits.connectionsPerClient', 'limits.requestsPerConnection', 'shutdown.grace']);
  const fresh = await keepAlive(berth.port, pki);
  t.match(await fresh.get(host), { status: 200, connection: 'keep-alive' }, 'the cap lifted: a new connection is served, and kept');
  t.match(await fresh.get(host), { status: 200, connection: 'keep-alive' }, 'with no limit on its requests');
  // A request the upstream never answers, now with no upstream time limit: only the grace period ends it.
  const stuck = fresh.get(host, '', '/v2/hang');
  await until(() => hanging.length === 2);
  const stopping = Date.now();
  berth.child.kill('SIGTERM');
  t.match(await berth.waitForLine((l) => l.msg === 'grace period over'), { grace: '1s' }, 'the drain ends at the reloaded grace period, not the 10 minutes berth started with');
  void stuck.catch(() => undefined);
  t.equal(await stopCli(berth.child), 1, 'exit 1: a request was cut');
  t.ok(Date.now() - stopping < 5000, 'within seconds');
});
