import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';

// No input from the upstream may take a worker down, and a worker that dies after it has
// served is always replaced: berth never stops on its own while it serves.

/** One request on its own TLS connection; resolves with the status line and the serving worker's pid (from its access line). */
function get(port: number, pki: TestPki, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = '';
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pki.ca }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    socket.on('end', () => resolve(reply.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error('no answer in 20 s')));
  });
}

/** The processes whose parent is `pid` (Linux's /proc): a primary's workers, starting or serving. */
function childrenOf(pid: number): Set<number> {
  const children = new Set<number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.add(Number(entry));
  }
  return children;
}

/** Answers /v2/bad/… with a reason phrase Node refuses to write on, everything else 200. */
async function trickyUpstream(t: Test): Promise<string> {
  const server = net.createServer((socket) => {
    let head = '';
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const bad = head.startsWith('GET /v2/bad/');
      head = '';
      socket.write(bad ? 'HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\n{}' : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}', 'latin1');
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

t.test('two workers: malformed answers do not kill them, and workers killed one after another are replaced', async (t) => {
  const upstream = await trickyUpstream(t);
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '2', '--upstream', upstream, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));

  for (let i = 0; i < 8; i++) t.equal(await get(berth.port, pki, `/v2/bad/${i}`), 'HTTP/1.1 502 Bad Gateway', `malformed answer ${i}: 502`);
  t.equal(await get(berth.port, pki, '/v2/good'), 'HTTP/1.1 200 OK');
  t.notOk(berth.lines.some((l) => String(l.msg).startsWith('worker died')), 'no worker died');

  // Kill the worker that served the latest request, six times, each time once its
  // replacement serves. The replacement is a worker that was not there at the kill: the
  // other worker may serve for the first time meanwhile (it may have served none of the
  // requests above), and the next round must not take it for the replacement and kill the
  // only one listening while the replacement still starts.
  for (let round = 0; round < 6; round++) {
    const path = `/v2/round/${round}`;
    t.equal(await get(berth.port, pki, path), 'HTTP/1.1 200 OK');
    const victim = (await berth.waitForLine((l) => l.path === path)).pid as number;
    const there = childrenOf(berth.child.pid!);
    t.ok(there.has(victim), `round ${round}: worker ${victim} is the primary's`);
    process.kill(victim, 'SIGKILL');
    const died = await berth.waitForLine((l) => l.msg === 'worker died; starting another' && l.worker === victim);
    t.match(died, { signal: 'SIGKILL', restartIn: /^\d+(\.\d+)?s$/ }, `round ${round}: the primary replaces worker ${victim} (after ${String(died.restartIn)})`);
    // Requests go on being served meanwhile, and the replacement serves too.
    let fresh = false;
    for (let i = 0; i < 200 && !fresh; i++) {
      const probe = `/v2/round/${round}/probe/${i}`;
      t.equal(await get(berth.port, pki, probe), 'HTTP/1.1 200 OK', `round ${round}: served while a worker is replaced`);
      const pid = (await berth.waitForLine((l) => l.path === probe)).pid as number;
      fresh = !there.has(pid);
      if (!fresh) await new Promise((r) => setTimeout(r, 100));
    }
    t.ok(fresh, `round ${round}: a new worker serves`);
  }

  // Six deaths within the minute: a replacement now waits seconds while another worker
  // serves. Both killed at once: the second death leaves none listening (every connection
  // refused, the port being shared), and its replacement starts without that wait.
  const both = [...childrenOf(berth.child.pid!)];
  t.equal(both.length, 2, 'two workers before the double kill');
  for (const pid of both) process.kill(pid, 'SIGKILL');
  const died = await Promise.all(both.map((pid) => berth.waitForLine((l) => l.msg === 'worker died; starting another' && l.worker === pid)));
  t.match(died.find((l) => l.listening === 0), { restartIn: '0s' }, 'the death that left no worker listening is replaced at once');
  let served = '';
  for (let i = 0; i < 150 && !served; i++) {
    served = await get(berth.port, pki, `/v2/after-both/${i}`).catch(() => '');
    if (!served) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(served, 'HTTP/1.1 200 OK', 'served again after both were killed');
  t.notOk(berth.lines.some((l) => l.level === 60), 'berth never gave up');
  t.equal(berth.child.exitCode, null, 'the primary still runs');
  t.equal(await stopCli(berth.child), 0);
});
