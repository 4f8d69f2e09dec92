import https from 'node:https';
import t from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { makeTestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * A log collector that stops reading berth's stdout must not stop berth: with synchronous
 * logging the first write to a full pipe blocks the event loop and every transfer with it.
 */
t.test('berth keeps serving while nobody reads its stdout, and the lines arrive afterwards', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  // Node's stdio "pipes" are socketpairs whose buffers hold a few hundred KiB: long paths
  // make the 1500 access lines (about 3 MiB) overflow them many times over.
  berth.child.stdout!.pause();
  const padding = 'x'.repeat(2000);

  const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const get = (i: number): Promise<number> =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', servername: 'localhost', port: berth.port, path: `/v2/stalled/${i}/${padding}`, ca: pki.ca, agent, headers: { host: `localhost:${berth.port}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        })
        .on('error', reject);
    });
  const count = 1500;
  const statuses: number[] = [];
  for (let i = 0; i < count; i += 50) statuses.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => get(i + j)))));
  t.equal(statuses.filter((s) => s === 200).length, count, `all ${count} requests answered while stdout was stalled`);

  berth.child.stdout!.resume();
  await berth.waitForLine(() => berth.lines.filter((l) => String(l.path).startsWith('/v2/stalled/')).length === count);
  t.pass('every access line arrived once stdout was read again');
  t.equal(await stopCli(berth.child), 0);
});

t.test('SIGTERM ends berth even while nobody reads its stdout (logs are flushed with a deadline)', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  berth.child.stdout!.pause();
  const agent = new https.Agent({ keepAlive: false });
  const padding = 'x'.repeat(4000);
  const get = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', servername: 'localhost', port: berth.port, path: `/v2/backlog/${i}/${padding}`, ca: pki.ca, agent, headers: { host: `localhost:${berth.port}` } }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
  for (let i = 0; i < 600; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => get(i + j)));
  // About 2.5 MiB of access lines now wait behind a full stdout.
  const exited = new Promise<number | null>((resolve) => berth.child.once('exit', (code) => resolve(code)));
  berth.child.kill('SIGTERM');
  const timer = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000).unref());
  const outcome = await Promise.race([exited, timer]);
  t.not(outcome, 'hung', 'berth exited within 10 s of SIGTERM');
  t.equal(outcome, 0, 'with exit code 0');
  berth.child.stdout!.resume();
});
