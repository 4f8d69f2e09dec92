import crypto from 'node:crypto';
import { once } from 'node:events';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { startCli, type RunningCli } from '../helpers/cli.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/wait.js';

// Real signals to a real berth process, while a client pushes a blob slowly through it.

const CHUNK = 64 * 1024;

/** An upstream that hashes each upload as it streams and answers 201 with the digest it computed. */
async function hashingUpstream(t: Test): Promise<{ url: string; digests: string[]; aborted: string[]; receiving: Promise<void> }> {
  const digests: string[] = [];
  const aborted: string[] = [];
  let bodyArrived = (): void => undefined;
  const receiving = new Promise<void>((resolve) => (bodyArrived = resolve));
  const up = await startUpstream(
    t,
    (req, res) => {
      if (req.method === 'GET') return void res.end('{}');
      const hash = crypto.createHash('sha256');
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bodyArrived();
      });
      req.on('aborted', () => aborted.push(req.url!));
      req.on('end', () => {
        const digest = `sha256:${hash.digest('hex')}`;
        digests.push(digest);
        res.writeHead(201, { 'docker-content-digest': digest, 'content-length': '0' }).end();
      });
    },
    { streaming: true },
  );
  return { url: up.url, digests, aborted, receiving };
}

interface SlowUpload {
  /** Resolves with the status line and headers berth answered with, or rejects if the connection dies first. */
  readonly answer: Promise<string>;
  /** sha256 of what was sent. */
  readonly digest: string;
  readonly socket: tls.TLSSocket;
}

/** A monolithic blob PUT sent in 64 KiB pieces, one every `everyMs`. */
function slowUpload(port: number, pki: TestPki, chunks: number, everyMs: number): Promise<SlowUpload> {
  const body = crypto.randomBytes(CHUNK * chunks);
  const digest = `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pki.ca }, () => {
      socket.write(`PUT /v2/lib/blobs/uploads/u1?digest=${encodeURIComponent(digest)} HTTP/1.1\r\nHost: localhost:${port}\r\nContent-Length: ${body.length}\r\n\r\n`);
      let sent = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return void clearInterval(timer);
        socket.write(body.subarray(sent * CHUNK, (sent + 1) * CHUNK));
        if (++sent === chunks) clearInterval(timer);
      }, everyMs);
      const answer = new Promise<string>((ok, fail) => {
        let reply = '';
        socket.on('data', (d: Buffer) => {
          reply += d.toString('latin1');
          if (reply.includes('\r\n\r\n')) ok(reply.slice(0, reply.indexOf('\r\n\r\n')));
        });
        socket.on('close', () => fail(new Error(`connection closed before an answer (${sent} of ${chunks} pieces sent)`)));
        socket.on('error', () => undefined);
      });
      answer.catch(() => undefined);
      resolve({ answer, digest, socket });
    });
    socket.once('error', reject);
  });
}

/** Opens a TLS connection; resolves with the error code if it fails, or 'connected'. */
function tryConnect(port: number, pki: TestPki): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pki.ca }, () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function exitCode(berth: RunningCli): Promise<number | null> {
  if (berth.child.exitCode !== null) return berth.child.exitCode;
  const [code] = (await once(berth.child, 'close')) as [number | null];
  return code;
}

for (const workers of ['1', '2']) {
  t.test(`workers ${workers}: SIGTERM lets a slow upload finish, refuses new connections, exits 0`, async (t) => {
    const up = await hashingUpstream(t);
    const pki = await makeTestPki();
    const berth = await startCli(['--workers', workers, '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
    t.teardown(() => void berth.child.kill('SIGKILL'));

    const upload = await slowUpload(berth.port, pki, 40, 50); // 2.5 MiB over about 2 s
    await up.receiving; // the upload is in flight, through berth
    const started = Date.now();
    berth.child.kill('SIGTERM');
    const waiting = await berth.waitForLine((l) => l.msg === 'draining: waiting for requests in flight');
    t.match(waiting, { requests: 1, waiting: [{ method: 'PUT', path: '/v2/lib/blobs/uploads/u1?digest=sha256%3A' + upload.digest.slice(7) }] }, 'logs what it waits for');
    // Refused by the kernel once the listener is closed; with workers, the primary's shared
    // listener may still take a connection in the moment before every worker has closed,
    // and that one is reset. Either way it is not served.
    t.match(await tryConnect(berth.port, pki), /^(ECONNREFUSED|ECONNRESET)$/, 'a new connection is refused during the drain');

    t.match(await upload.answer, /^HTTP\/1\.1 201 /, 'the upload completed');
    t.match(await upload.answer, /\r\nconnection: close/i, 'its answer closes the kept-alive connection');
    t.same(up.digests, [upload.digest], 'the upstream got every byte');
    t.equal(await exitCode(berth), 0, 'exit 0 once drained');
    t.ok(Date.now() - started >= 1000, 'the process waited for the upload');
    t.ok(
      berth.lines.some((l) => l.msg === 'request' && l.method === 'PUT' && l.status === 201),
      'the upload has its access line',
    );
  });
}

t.test('a second SIGTERM closes the upload at once; the upstream sees the abort; exit 1', async (t) => {
  const up = await hashingUpstream(t);
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));

  const upload = await slowUpload(berth.port, pki, 200, 50); // would take 10 s
  await up.receiving;
  berth.child.kill('SIGTERM');
  await berth.waitForLine((l) => l.msg === 'draining: waiting for requests in flight');
  const started = Date.now();
  berth.child.kill('SIGTERM');
  await t.rejects(upload.answer, /connection closed before an answer/, 'the client connection is closed');
  t.equal(await exitCode(berth), 1, 'exit 1: a request was cut');
  t.ok(Date.now() - started < 3000, 'at once');
  t.same(up.digests, [], 'the upstream never took a partial upload as complete');
  await until(() => up.aborted.length > 0);
  t.same(up.aborted, ['/v2/lib/blobs/uploads/u1?digest=' + encodeURIComponent(upload.digest)], 'the upstream saw the abort');
  t.ok(berth.lines.some((l) => l.msg === 'request' && l.method === 'PUT' && l.completed === false), 'the cut upload is logged');
});

t.test('the grace period ends the drain: the upload is cut, exit 1', async (t) => {
  const up = await hashingUpstream(t);
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile], {
    env: { BERTH_SHUTDOWN_GRACE: '1s' },
  });
  t.teardown(() => void berth.child.kill('SIGKILL'));

  const upload = await slowUpload(berth.port, pki, 200, 50);
  await up.receiving;
  const started = Date.now();
  berth.child.kill('SIGTERM');
  await t.rejects(upload.answer, /connection closed before an answer/);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 900 && elapsed < 4000, `cut after the grace period (${elapsed} ms)`);
  t.match(await berth.waitForLine((l) => l.msg === 'grace period over'), { grace: '1s' });
  t.equal(await exitCode(berth), 1);
  t.same(up.digests, []);
});

t.test('idle kept-alive connections are closed when the drain begins; an idle berth exits at once', async (t) => {
  const up = await hashingUpstream(t);
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: berth.port, ca: pki.ca });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  socket.write(`GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const [first] = (await once(socket, 'data')) as [Buffer];
  t.match(first.toString(), /^HTTP\/1\.1 200 [\s\S]*connection: keep-alive/i, 'kept alive');
  const closed = once(socket, 'close');
  berth.child.kill('SIGTERM');
  await closed;
  t.pass('the idle connection was closed');
  t.equal(await exitCode(berth), 0);
});
