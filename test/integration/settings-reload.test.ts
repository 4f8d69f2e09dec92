import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startCli, stopCli, type RunningCli } from '../helpers/cli.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

// SIGHUP reads the settings again (config file, variables, flags): those that need no new
// listener apply at once in every worker, without dropping a connection; the others are
// named as taking a restart; a config that no longer loads changes nothing.

/** One kept-alive TLS connection; `get` sends a request on it and resolves with the status and the upstream's echo. */
function keepAlive(port: number, pki: TestPki): Promise<{ get(host: string, headers?: string): Promise<{ status: number; forwardedFor: string | undefined }>; close(): void; closed: () => boolean }> {
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
        get: (host, headers = '') =>
          new Promise((ok) => {
            waiting = (reply) => ok({ status: Number(reply.split(' ')[1]), forwardedFor: /x-seen-forwarded-for: ([^\r]*)/i.exec(reply)?.[1] });
            socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${host}\r\n${headers}\r\n`);
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
  t.test(`workers ${workers}: SIGHUP applies serverNames, trustedProxies and log.level at once, and names what takes a restart`, async (t) => {
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

    // Live: serverNames, trustedProxies, HSTS, log level. Not: the upstream, the grace period.
    fs.writeFileSync(file, 'upstream: http://127.0.0.1:9\nlisten: 127.0.0.1:0\nserverNames: [registry.example.com, localhost, mirror.example.org]\ntrustedProxies: [127.0.0.0/8]\nlog: { level: debug }\nhsts: { maxAge: 1h }\nshutdown: { grace: 1m }\n');
    berth.child.kill('SIGHUP');
    const reloaded = await lines(berth, workers, (l) => l.msg === 'settings reloaded');
    for (const line of reloaded) t.same(line.settings, ['serverNames', 'trustedProxies', 'hsts.maxAge', 'log.level'], 'applied in each serving process');
    const uncovered = await lines(berth, workers, (l) => l.msg === 'the certificate does not cover every name clients use: clients reaching berth by these names will refuse it');
    t.same(uncovered.map((l) => l.uncovered), Array(workers).fill(['mirror.example.org']), 'a new server name the certificate does not cover: warned about, as at start');
    const restart = await lines(berth, workers, (l) => l.msg === 'settings changed that only a restart applies: restart berth to apply them');
    for (const line of restart) t.match(line, { level: 40, settings: ['upstream', 'shutdown.grace'] }, 'the others named, with the restart they take');

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
