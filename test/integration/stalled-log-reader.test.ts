import https from 'node:https';
import t, { type Test } from 'tap';
import { startCli, stopCli, type RunningCli } from '../helpers/cli.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * A log collector that stops reading berth's stdout must not stop berth: no write may
 * block the event loop, and no flush may keep the process from exiting.
 */

/**
 * Sends `count` GETs, 50 at a time, with paths padded so each access line is a few KiB:
 * Node's stdio "pipes" are socketpairs whose buffers hold a few hundred KiB, and the
 * lines must overflow them many times over. Resolves with the statuses.
 */
async function flood(berth: RunningCli, pki: TestPki, prefix: string, count: number): Promise<number[]> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  const padding = 'x'.repeat(3000);
  const get = (i: number): Promise<number> =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', servername: 'localhost', port: berth.port, path: `${prefix}${i}/${padding}`, ca: pki.ca, agent, headers: { host: `localhost:${berth.port}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        })
        .on('error', reject);
    });
  const statuses: number[] = [];
  try {
    for (let i = 0; i < count; i += 50) statuses.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => get(i + j)))));
  } finally {
    agent.destroy();
  }
  return statuses;
}

async function startStalled(t: Test, workers: string): Promise<{ berth: RunningCli; pki: TestPki }> {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  berth.child.stdout!.pause();
  return { berth, pki };
}

t.test('berth keeps serving while nobody reads its stdout, and the lines arrive afterwards', async (t) => {
  const { berth, pki } = await startStalled(t, '2');
  const count = 1500;
  const statuses = await flood(berth, pki, '/v2/stalled/', count);
  t.equal(statuses.filter((s) => s === 200).length, count, `all ${count} requests answered while stdout was stalled`);

  berth.child.stdout!.resume();
  await berth.waitForLine(() => berth.lines.filter((l) => String(l.path).startsWith('/v2/stalled/')).length === count);
  t.pass('every access line arrived once stdout was read again');
  t.equal(await stopCli(berth.child), 0);
});

t.test('SIGTERM ends berth even while nobody reads its stdout (logs are flushed with a deadline)', async (t) => {
  const { berth, pki } = await startStalled(t, '1');
  await flood(berth, pki, '/v2/backlog/', 800);
  // Megabytes of access lines now wait behind a full stdout.
  const exited = new Promise<number | null>((resolve) => berth.child.once('exit', (code) => resolve(code)));
  berth.child.kill('SIGTERM');
  const timer = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000).unref());
  const outcome = await Promise.race([exited, timer]);
  t.not(outcome, 'hung', 'berth exited within 10 s of SIGTERM');
  t.equal(outcome, 0, 'with exit code 0');
  berth.child.stdout!.resume();
});
