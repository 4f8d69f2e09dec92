import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { runCli, startCli, stopCli } from '../helpers/cli.js';
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
    // The kernel spreads connections over the workers by a hash of their addresses
    // (SO_REUSEPORT): 16 land on one worker alone once in 32,768 runs.
    const resumed: boolean[] = [];
    for (let i = 0; i < 16; i++) {
      const next = await once_(berth.port, pki, `/v2/${version}/resume/${i}`, { maxVersion: version, session: first.session });
      t.equal(next.status, 'HTTP/1.1 200 OK');
      resumed.push(next.reused);
    }
    t.same(resumed, Array(16).fill(true), `${version}: every reconnection resumed the session`);
    await berth.waitForLine((l) => l.path === `/v2/${version}/resume/15`);
    const pids = new Set(berth.lines.filter((l) => String(l.path).startsWith(`/v2/${version}/resume/`)).map((l) => l.pid));
    t.equal(pids.size, 2, `${version}: resumed connections were served by both workers`);
  }

  const serving = new Set(berth.lines.filter((l) => l.msg === 'request').map((l) => l.pid));
  t.notOk(serving.has(berth.child.pid), 'the primary serves no requests');
  t.equal(await stopCli(berth.child), 0, 'SIGTERM: workers drain, berth exits 0');
  t.equal(berth.lines.filter((l) => l.msg === 'stopped').length, 3, "each worker's and the primary's last line was written before exit");
});

/** Inodes of the sockets listening on this TCP port (IPv4), from /proc/net/tcp. */
function listeningInodes(port: number): Set<string> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const rows = fs.readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1).map((row) => row.trim().split(/\s+/));
  // local_address is ADDR:PORT in hex; state 0A is LISTEN; the inode is the tenth field.
  return new Set(rows.filter((f) => f[1]?.endsWith(`:${hex}`) && f[3] === '0A').map((f) => f[9]!));
}

/** Inodes of the sockets a process holds open. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: 'latin1' });
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) out.add(inode);
  }
  return out;
}

t.test('with workers: 2 on Linux, each worker listens on the port itself (SO_REUSEPORT); a second berth on that port is refused', { skip: process.platform !== 'linux' && 'SO_REUSEPORT and /proc are Linux' }, async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const args = ['--workers', '2', '--upstream', up.url, '--cert', pki.certFile, '--key', pki.keyFile, '--admin-listen', 'off'];
  const berth = await startCli([...args, '--listen', '127.0.0.1:0']);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const pids = new Set<number>();
  for (let i = 0; i < 16; i++) {
    t.equal((await once_(berth.port, pki, `/v2/spread/${i}`, {})).status, 'HTTP/1.1 200 OK');
    pids.add((await berth.waitForLine((l) => l.path === `/v2/spread/${i}`)).pid as number);
  }
  t.equal(pids.size, 2, 'the kernel spread 16 new connections over both workers');
  const listening = listeningInodes(berth.port);
  t.equal(listening.size, 2, 'two sockets listen on the port');
  for (const pid of pids) t.equal([...socketInodes(pid)].filter((inode) => listening.has(inode)).length, 1, `worker ${pid} holds one of them`);
  t.equal([...socketInodes(berth.child.pid!)].filter((inode) => listening.has(inode)).length, 0, 'the primary holds none: no connection passes through it');

  for (const workers of ['2', '1']) {
    const second = await runCli(['--workers', workers, ...args, '--listen', `127.0.0.1:${berth.port}`]);
    t.equal(second.code, 1, `a second berth (workers ${workers}) on the same port does not start`);
    t.match(second.stderr, new RegExp(`cannot listen: .*EADDRINUSE.*127\\.0\\.0\\.1:${berth.port}`), 'and says why');
  }
  t.equal((await once_(berth.port, pki, '/v2/still', {})).status, 'HTTP/1.1 200 OK', 'the first one serves on, alone');
  t.equal(listeningInodes(berth.port).size, 2);
  t.equal(await stopCli(berth.child), 0);
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

t.test('workers run with the small young generation and --expose-gc even when node was started without them', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
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
  t.notOk(argv(plain.child.pid!).includes('--max-semi-space-size=4'), 'the primary was started without it');
  const plainWorker = await workerArgv(plain);
  t.ok(plainWorker.includes('--max-semi-space-size=4'), 'the primary adds it for workers');
  t.ok(plainWorker.includes('--expose-gc'), 'and --expose-gc (BodyGarbage)');
  t.ok(plainWorker.includes('--no-parallel-scavenge'), 'and --no-parallel-scavenge');
  t.equal(await stopCli(plain.child), 0);

  const own = await startCli(args, { nodeFlags: ['--max-semi-space-size=8'] });
  t.teardown(() => void own.child.kill('SIGKILL'));
  const ownArgv = await workerArgv(own);
  t.ok(ownArgv.includes('--max-semi-space-size=8') && !ownArgv.includes('--max-semi-space-size=4'), "the operator's own setting wins");
  t.equal(await stopCli(own.child), 0);
});

for (const workers of ['1', '2']) {
  t.test(`workers ${workers}: session ticket keys rotate (tls.ticketKeyRotation); a ticket from before makes one full handshake, and the new one resumes everywhere`, async (t) => {
    const up = await startUpstream(t, (_req, res) => res.end('ok'));
    const pki = await makeTestPki();
    // At debug, each worker logs when the keys the primary sent come into service.
    const berth = await startCli(['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile], {
      env: { BERTH_TLS_TICKET_KEY_ROTATION: '5s', BERTH_LOG_LEVEL: 'debug' },
    });
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
    // Each step right after a rotation, so that the next one is seconds away, once every
    // worker has the keys the primary sent (one process uses its keys as it makes them).
    const rotated = async (after: number): Promise<void> => {
      await berth.waitForLine((l) => l.msg === 'TLS session ticket keys rotated' && (l.time as number) > after);
      if (workers === '1') return;
      const inService = new Set<unknown>();
      await berth.waitForLine((l) => {
        if (l.msg === 'TLS session ticket keys from the primary in service' && (l.time as number) > after) inService.add(l.pid);
        return inService.size === Number(workers);
      });
    };
    await rotated(0);
    const before = await once_(berth.port, pki, '/v2/before', {});
    // 16 connections: the kernel's hash puts them all on one worker once in 32,768 runs.
    const first = await Promise.all(Array.from({ length: 16 }, () => resume(before.session)));
    t.same(first.map((r) => r.reused), Array(16).fill(true), 'a ticket resumes while its keys are in service');
    if (workers === '2') {
      t.equal(new Set(first.map((r) => r.pid)).size, 2, 'on both workers');
      // A worker started after a rotation gets the keys in service (Node would hand it the
      // first worker's original ones).
      const old = new Set(first.map((r) => r.pid));
      process.kill([...old][0]!, 'SIGKILL');
      let fresh: { reused: boolean; pid: number } | undefined;
      // Until the replacement has started and the kernel hands it a connection: by time, not
      // by count (a loaded machine starts a worker in seconds; the survivor answers in ms).
      const deadline = Date.now() + 30_000;
      while (!fresh && Date.now() < deadline) {
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
    for (let i = 0; i < 16; i++) after.push(await resume(stale.session));
    t.same(after.map((r) => r.reused), Array(16).fill(true), 'the ticket it got resumes');
    if (workers === '2') t.equal(new Set(after.map((r) => r.pid)).size, 2, 'on both workers');
    t.equal(await stopCli(berth.child), 0);
  });
}

t.test('with workers: 2, berths started together on port 0 each get a port of their own, even while other sockets take ports', { skip: process.platform !== 'linux' && 'SO_REUSEPORT and /proc are Linux' }, async (t) => {
  // Others take ephemeral ports all the while, as other programs (and tests) do: a port
  // the primary found and let go before its workers bound it would go to one of them.
  const held: net.Server[] = [];
  let squatting = true;
  const squat = (async () => {
    while (squatting) {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.once('error', () => resolve()).listen(0, '127.0.0.1', resolve));
      held.push(server);
      if (held.length > 4000) held.shift()!.close();
      if (held.length % 50 === 0) await new Promise((r) => setImmediate(r));
    }
  })();
  t.teardown(async () => {
    squatting = false;
    await squat;
    for (const server of held) server.close();
  });
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const args = ['--workers', '2', '--upstream', up.url, '--cert', pki.certFile, '--key', pki.keyFile, '--admin-listen', 'off', '--listen', '127.0.0.1:0'];
  const started = await Promise.allSettled(Array.from({ length: 6 }, () => startCli(args)));
  for (const s of started) if (s.status === 'fulfilled') t.teardown(() => void s.value.child.kill('SIGKILL'));
  squatting = false;
  await squat;
  t.same(started.map((s) => s.status === 'fulfilled' || String(s.reason)), Array(6).fill(true), 'all six started');
  const berths = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  t.equal(new Set(berths.map((b) => b.port)).size, berths.length, 'on six ports');
  for (const berth of berths) {
    t.equal(listeningInodes(berth.port).size, 2, `port ${berth.port}: both workers listen on it`);
    t.equal((await once_(berth.port, pki, '/v2/', {})).status, 'HTTP/1.1 200 OK', `port ${berth.port} serves`);
    t.equal(await stopCli(berth.child), 0);
  }
});
