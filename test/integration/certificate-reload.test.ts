import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { startCli, stopCli, type RunningCli } from '../helpers/cli.js';
import { makeTestPki, tryRenegotiation, type TestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

// A real berth process serving certificate files that are replaced under it, as
// cert-manager, certbot or a Kubernetes Secret volume do.

const serialOf = (pem: string): string => new crypto.X509Certificate(pem).serialNumber;

interface Connection {
  readonly serial: string;
  /** One more request on the same connection; resolves with the status line. */
  get(path: string): Promise<string>;
  close(): void;
}

function connect(port: number, pki: TestPki, session?: Buffer): Promise<Connection & { reused: boolean; session: Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pki.ca, session }, () => {
      let waiting: ((line: string) => void) | undefined;
      let reply = '';
      socket.on('data', (d: Buffer) => {
        reply += d.toString('latin1');
        const end = reply.indexOf('\r\n\r\n');
        if (end >= 0 && /content-length: 0|content-length: \d+/i.test(reply)) {
          const length = Number(/content-length: (\d+)/i.exec(reply)?.[1] ?? 0);
          if (reply.length >= end + 4 + length) {
            const line = reply.split('\r\n')[0]!;
            reply = reply.slice(end + 4 + length);
            waiting?.(line);
          }
        }
      });
      resolve({
        serial: socket.getPeerX509Certificate()?.serialNumber ?? '(resumed: not sent)',
        reused: socket.isSessionReused(),
        session: new Promise((ok) => socket.once('session', ok)),
        get: (p) =>
          new Promise((ok) => {
            waiting = ok;
            socket.write(`GET ${p} HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`);
          }),
        close: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/** Writes a file the way renewal tools do: a new file renamed over the old one. */
function replace(file: string, content: string): void {
  fs.writeFileSync(`${file}.tmp`, content, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

async function start(t: Test, workers: string, certFile: string, keyFile: string): Promise<RunningCli> {
  const up = await startUpstream(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('{}'));
  const berth = await startCli(['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', certFile, '--key', keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  return berth;
}

/** Resolves once `count` log lines match (one per worker). */
async function lines(berth: RunningCli, count: number, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>[]> {
  for (;;) {
    const found = berth.lines.filter(match);
    if (found.length >= count) return found;
    await berth.waitForLine((l) => match(l) && !found.includes(l));
  }
}

for (const workers of ['1', '2']) {
  t.test(`workers ${workers}: a replaced certificate reaches new connections; open ones keep going`, async (t) => {
    const pki = await makeTestPki();
    const count = Number(workers);
    const berth = await start(t, workers, pki.certFile, pki.keyFile);
    const before = await connect(berth.port, pki);
    t.equal(before.serial, serialOf(pki.cert));
    t.match(await before.get('/v2/'), /^HTTP\/1\.1 200/);
    const session = await before.session;

    const next = await pki.issue();
    replace(pki.keyFile, next.key);
    replace(pki.certFile, next.cert);
    const reloaded = await lines(berth, count, (l) => l.msg === 'certificate reloaded');
    t.equal(reloaded.length, count, 'every worker reloaded');
    t.match(reloaded[0], { reason: 'files changed', serial: serialOf(next.cert) });

    for (let i = 0; i < 4; i++) {
      const after = await connect(berth.port, pki);
      t.equal(after.serial, serialOf(next.cert), `new connection ${i} sees the new certificate`);
      t.match(await after.get('/v2/'), /^HTTP\/1\.1 200/);
      after.close();
    }
    t.equal(await tryRenegotiation(berth.port, pki.ca), 'ERR_SSL_NO_RENEGOTIATION', 'the reloaded context still refuses renegotiation');
    t.match(await before.get('/v2/again'), /^HTTP\/1\.1 200/, 'the connection opened before the reload still works');
    before.close();

    const resumed = await connect(berth.port, pki, session);
    t.ok(resumed.reused, 'a session from before the reload still resumes');
    resumed.close();
    t.equal(await stopCli(berth.child), 0);
  });
}

t.test('a Kubernetes Secret volume: the ..data symlink is swapped', async (t) => {
  const pki = await makeTestPki();
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-secret-'));
  const version = (name: string, pair: { cert: string; key: string }): void => {
    fs.mkdirSync(path.join(mount, name));
    fs.writeFileSync(path.join(mount, name, 'tls.crt'), pair.cert);
    fs.writeFileSync(path.join(mount, name, 'tls.key'), pair.key);
  };
  // What the kubelet's atomic writer builds: ..<timestamp>/ with the files, ..data -> it,
  // and tls.crt -> ..data/tls.crt; an update swaps ..data with a rename.
  version('..2026_11_28_01', { cert: pki.cert, key: pki.key });
  fs.symlinkSync('..2026_11_28_01', path.join(mount, '..data'));
  fs.symlinkSync('..data/tls.crt', path.join(mount, 'tls.crt'));
  fs.symlinkSync('..data/tls.key', path.join(mount, 'tls.key'));
  const berth = await start(t, '1', path.join(mount, 'tls.crt'), path.join(mount, 'tls.key'));
  t.equal((await connect(berth.port, pki)).serial, serialOf(pki.cert));

  const next = await pki.issue();
  version('..2026_11_28_02', next);
  fs.symlinkSync('..2026_11_28_02', path.join(mount, '..data_tmp'));
  fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
  fs.rmSync(path.join(mount, '..2026_11_28_01'), { recursive: true });

  await berth.waitForLine((l) => l.msg === 'certificate reloaded');
  const after = await connect(berth.port, pki);
  t.equal(after.serial, serialOf(next.cert), 'the new certificate is served');
  after.close();
  t.equal(await stopCli(berth.child), 0);
});

t.test('a broken replacement is refused and the certificate in service stays', async (t) => {
  const pki = await makeTestPki();
  const berth = await start(t, '1', pki.certFile, pki.keyFile);
  const other = await pki.issue();
  const expired = await pki.issue({ notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  const cases: [string, () => void, RegExp][] = [
    ['a key that does not belong to the certificate', () => replace(pki.keyFile, other.key), /does not belong to the certificate/],
    ['an expired certificate', () => (replace(pki.certFile, expired.cert), replace(pki.keyFile, expired.key)), /expired/],
    ['not a certificate', () => replace(pki.certFile, 'garbage\n'), /expected a PEM certificate/],
    ['an unreadable file', () => fs.rmSync(pki.certFile), /cannot read certificate/],
  ];
  let refusals = 0;
  for (const [name, breakIt, why] of cases) {
    breakIt();
    refusals++;
    const refused = await lines(berth, refusals, (l) => l.msg === 'certificate reload refused: the certificate in service stays');
    t.match(refused[refusals - 1], { error: why }, `${name}: refused, saying why`);
    t.equal(refused[refusals - 1]!.level, 50, 'logged as an error');
    const conn = await connect(berth.port, pki);
    t.equal(conn.serial, serialOf(pki.cert), `${name}: the old certificate is still served`);
    t.match(await conn.get('/v2/'), /^HTTP\/1\.1 200/);
    conn.close();
  }
  // A good pair after all that is taken.
  replace(pki.keyFile, other.key);
  replace(pki.certFile, other.cert);
  await berth.waitForLine((l) => l.msg === 'certificate reloaded');
  t.equal((await connect(berth.port, pki)).serial, serialOf(other.cert));
  t.ok(berth.lines.every((l) => l.msg !== 'certificate reloaded' || l.serial === serialOf(other.cert)), 'no broken pair was ever put in service');
  t.equal(await stopCli(berth.child), 0);
});

t.test('SIGHUP re-reads the files in every worker', async (t) => {
  const pki = await makeTestPki();
  const berth = await start(t, '2', pki.certFile, pki.keyFile);
  berth.child.kill('SIGHUP');
  const seen = await lines(berth, 2, (l) => l.msg === 'certificate unchanged' && l.reason === 'SIGHUP');
  t.equal(new Set(seen.map((l) => l.pid)).size, 2, 'both workers re-read the files');
  const conn = await connect(berth.port, pki);
  t.match(await conn.get('/v2/'), /^HTTP\/1\.1 200/, 'still serving');
  conn.close();
  t.equal(await stopCli(berth.child), 0);
});

for (const workers of ['1', '2']) {
  t.test(`workers ${workers}: a certificate that does not cover publicOrigin's host or a server name is warned about, at start and on every reload`, async (t) => {
    const pki = await makeTestPki(['registry.example.com', 'localhost']);
    const up = await startUpstream(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('{}'));
    const args = ['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile];
    const warned = (l: Record<string, unknown>): boolean => l.msg === 'the certificate does not cover every name clients use: clients reaching berth by these names will refuse it';

    const covered = await startCli([...args, '--public-origin', 'https://registry.example.com', '--server-names', 'localhost']);
    t.teardown(() => void covered.child.kill('SIGKILL'));
    t.equal(covered.lines.filter(warned).length, 0, 'names covered: no warning');
    t.equal(await stopCli(covered.child), 0);

    const berth = await startCli([...args, '--public-origin', 'https://harbor.example.org', '--server-names', 'localhost,*.registry.example.com']);
    t.teardown(() => void berth.child.kill('SIGKILL'));
    const atStart = berth.lines.filter(warned);
    t.equal(atStart.length, 1, 'at start, once (by the process that loads the certificate)');
    t.match(atStart[0], { level: 40, uncovered: ['*.registry.example.com', 'harbor.example.org'], certificateNames: 'DNS:registry.example.com, DNS:localhost' }, 'naming each name not covered, and what the certificate names');

    // A renewal that covers them: reloaded without a warning. Then one that misses a name again.
    const next = await pki.issue({ names: ['harbor.example.org', '*.registry.example.com', 'localhost'] });
    replace(pki.keyFile, next.key);
    replace(pki.certFile, next.cert);
    await lines(berth, Number(workers), (l) => l.msg === 'certificate reloaded' && l.serial === serialOf(next.cert));
    t.equal(berth.lines.filter(warned).length, 1, 'a renewal that covers every name: no new warning');
    const narrow = await pki.issue({ names: ['harbor.example.org'] });
    replace(pki.keyFile, narrow.key);
    replace(pki.certFile, narrow.cert);
    const onReload = await lines(berth, 1 + Number(workers), warned);
    t.match(onReload.slice(1), Array(Number(workers)).fill({ uncovered: ['localhost', '*.registry.example.com'] }), 'on reload, by each process serving it');
    t.equal(await stopCli(berth.child), 0);
  });
}
