import fs from 'node:fs';
import tls from 'node:tls';
import t from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

/** One request on a new TLS connection; resolves with whether the session was resumed and the session to reuse. */
function once_(port: number, pki: TestPki, path: string, options: tls.ConnectionOptions): Promise<{ reused: boolean; session: Buffer | undefined; status: string }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let reply = '';
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pki.ca, ...options }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('session', (s: Buffer) => (session ??= s));
    socket.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    socket.on('end', () => resolve({ reused: socket.isSessionReused(), session, status: reply.split('\r\n')[0] ?? '' }));
    socket.on('error', reject);
  });
}


t.test('with workers: 2, both serve, and a TLS session resumes on either', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  t.match(berth.lines.find((l) => l.msg === 'berth is serving'), { workers: 2 }, 'announced once all workers listen');

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const first = await once_(berth.port, pki, `/v2/${version}/first`, { maxVersion: version });
    t.equal(first.status, 'HTTP/1.1 200 OK');
    t.ok(first.session, `${version}: a session to resume`);
    const resumed: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      const next = await once_(berth.port, pki, `/v2/${version}/resume/${i}`, { maxVersion: version, session: first.session });
      t.equal(next.status, 'HTTP/1.1 200 OK');
      resumed.push(next.reused);
    }
    t.same(resumed, Array(8).fill(true), `${version}: every reconnection resumed the session`);
    await berth.waitForLine((l) => l.path === `/v2/${version}/resume/7`);
    const pids = new Set(berth.lines.filter((l) => String(l.path).startsWith(`/v2/${version}/resume/`)).map((l) => l.pid));
    t.equal(pids.size, 2, `${version}: resumed connections were served by both workers`);
  }

  const serving = new Set(berth.lines.filter((l) => l.msg === 'request').map((l) => l.pid));
  t.notOk(serving.has(berth.child.pid), 'the primary serves no requests');
  t.equal(await stopCli(berth.child), 0, 'SIGTERM: workers drain, berth exits 0');
  t.equal(berth.lines.filter((l) => l.msg === 'stopped').length, 3, "each worker's and the primary's last line was written before exit");
});

t.test('a worker that dies is replaced and berth keeps serving', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  await once_(berth.port, pki, '/v2/a', {});
  const victim = (await berth.waitForLine((l) => l.path === '/v2/a')).pid as number;
  process.kill(victim, 'SIGKILL');
  const died = await berth.waitForLine((l) => l.msg === 'worker died; starting another');
  t.equal(died.signal, 'SIGKILL', 'the primary saw the worker die');
  for (let i = 0; i < 4; i++) t.equal((await once_(berth.port, pki, `/v2/after/${i}`, {})).status, 'HTTP/1.1 200 OK');
  t.equal(await stopCli(berth.child), 0);
});

t.test('workers run with the small young generation even when node was started without it', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const args = ['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile];
  const argv = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
  const workerArgv = async (berth: Awaited<ReturnType<typeof startCli>>): Promise<string[]> => {
    await once_(berth.port, pki, '/v2/flags', {});
    return argv((await berth.waitForLine((l) => l.path === '/v2/flags')).pid as number);
  };

  const plain = await startCli(args, { nodeFlags: [] });
  t.teardown(() => void plain.child.kill('SIGKILL'));
  t.notOk(argv(plain.child.pid!).includes('--max-semi-space-size=2'), 'the primary was started without it');
  t.ok((await workerArgv(plain)).includes('--max-semi-space-size=2'), 'the primary adds it for workers');
  t.equal(await stopCli(plain.child), 0);

  const own = await startCli(args, { nodeFlags: ['--max-semi-space-size=8'] });
  t.teardown(() => void own.child.kill('SIGKILL'));
  const ownArgv = await workerArgv(own);
  t.ok(ownArgv.includes('--max-semi-space-size=8') && !ownArgv.includes('--max-semi-space-size=2'), "the operator's own setting wins");
  t.equal(await stopCli(own.child), 0);
});
