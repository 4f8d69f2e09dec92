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
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer in 10 s')));
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

for (const workers of ['1', '2']) {
  t.test(`workers ${workers}: session ticket keys rotate (tls.ticketKeyRotation); a ticket from before makes one full handshake, and the new one resumes everywhere`, async (t) => {
    const up = await startUpstream(t, (_req, res) => res.end('ok'));
    const pki = await makeTestPki();
    const berth = await startCli(['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile], { env: { BERTH_TLS_TICKET_KEY_ROTATION: '5s' } });
    t.teardown(() => void berth.child.kill('SIGKILL'));
    let n = 0;
    const resume = async (session: Buffer | undefined): Promise<{ reused: boolean; pid: number }> => {
      const path = `/v2/r/${n++}`;
      const answer = await once_(berth.port, pki, path, { session });
      return { reused: answer.reused, pid: (await berth.waitForLine((l) => l.path === path)).pid as number };
    };
    /** resume(), or undefined after 3 s: a worker killed mid-request neither answers nor logs. */
    const tryResume = (session: Buffer | undefined): Promise<{ reused: boolean; pid: number } | undefined> =>
      Promise.race([resume(session).catch(() => undefined), new Promise<undefined>((r) => setTimeout(r, 3000))]);
    // Each step right after a rotation, so that the next one is seconds away; and a moment
    // later, once the workers have the keys the primary sent.
    const rotated = async (after: number): Promise<void> => {
      await berth.waitForLine((l) => l.msg === 'TLS session ticket keys rotated' && (l.time as number) > after);
      await new Promise((r) => setTimeout(r, 300));
    };
    await rotated(0);
    const before = await once_(berth.port, pki, '/v2/before', {});
    const first = await Promise.all([0, 1, 2, 3, 4, 5].map(() => resume(before.session)));
    t.same(first.map((r) => r.reused), Array(6).fill(true), 'a ticket resumes while its keys are in service');
    if (workers === '2') {
      t.equal(new Set(first.map((r) => r.pid)).size, 2, 'on both workers');
      // A worker started after a rotation gets the keys in service (Node would hand it the
      // first worker's original ones).
      const old = new Set(first.map((r) => r.pid));
      process.kill([...old][0]!, 'SIGKILL');
      let fresh: { reused: boolean; pid: number } | undefined;
      for (let i = 0; i < 200 && !fresh; i++) {
        const r = await tryResume(before.session);
        if (r && !old.has(r.pid)) fresh = r;
      }
      t.ok(fresh, 'the replacement worker serves');
      t.equal(fresh?.reused, true, 'and resumes the ticket issued before it started');
    }

    await rotated(Date.now());
    const stale = await once_(berth.port, pki, '/v2/stale', { session: before.session });
    t.equal(stale.status, 'HTTP/1.1 200 OK', 'a ticket from before the rotation still connects');
    t.notOk(stale.reused, 'with a full handshake');
    const after = [];
    for (let i = 0; i < 6; i++) after.push(await resume(stale.session));
    t.same(after.map((r) => r.reused), Array(6).fill(true), 'the ticket it got resumes');
    if (workers === '2') t.equal(new Set(after.map((r) => r.pid)).size, 2, 'on both workers');
    t.equal(await stopCli(berth.child), 0);
  });
}
