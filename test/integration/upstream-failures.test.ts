import net from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { buildConfig } from '../../src/config/validate.js';
import { startTestBerth } from '../helpers/berth.js';
import { ask, connectRaw, converse } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

/** A port that was just closed: connecting to it is refused. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('a dead upstream gives a registry-shaped 502 under /v2/, and berth keeps serving', async (t) => {
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${await deadPort()}` });
  for (let i = 0; i < 3; i++) {
    const answer = await ask(tb, { method: 'GET', path: '/v2/library/app/manifests/latest' });
    t.equal(answer.status, 502);
    t.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
    t.match(answer.headers['content-type'], /^application\/json/);
    const body = JSON.parse(answer.body.toString()) as { errors: { code: string; message: string }[] };
    t.equal(body.errors[0]!.code, 'UNAVAILABLE');
    t.match(body.errors[0]!.message, /unreachable/);
    t.notMatch(body.errors[0]!.message, /127\.0\.0\.1/, 'no internal address reaches the client');
  }
  const plain = await ask(tb, { path: '/api/v2.0/ping' });
  t.equal(plain.status, 502);
  t.match(plain.headers['content-type'], /^text\/plain/, 'outside /v2/ the error is plain text');
  t.equal(plain.headers['docker-distribution-api-version'], undefined);
});

t.test('a dead upstream during an upload: 502, and the body is not left hanging', async (t) => {
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${await deadPort()}` });
  const answer = await ask(tb, { method: 'PATCH', path: '/v2/x/blobs/uploads/u', body: Buffer.alloc(256 * 1024) });
  t.equal(answer.status, 502);
});

t.test('an upstream that never answers gives 504 after the upstream timeout', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/v2/') res.end('ok');
    // otherwise never answer
  });
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.upstreamResponse': '300ms' });
  const answer = await ask(tb, { path: '/v2/x/manifests/latest' });
  t.equal(answer.status, 504);
  t.equal((JSON.parse(answer.body.toString()) as { errors: { code: string }[] }).errors[0]!.code, 'UNAVAILABLE');
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});

t.test('the upstream timeout is inactivity: a body that keeps flowing both ways outlasts it', async (t) => {
  // The timer is refreshed by every chunk, sent or received (one deadline per request
  // would cut this exchange).
  const up = await startUpstream(t, (req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      if (req.method === 'PATCH') return void res.writeHead(202).end(String(bytes));
      res.writeHead(200, { 'content-length': '8' });
      let sent = 0;
      const timer = setInterval(() => {
        res.write('x');
        if (++sent < 8) return;
        clearInterval(timer);
        res.end();
      }, 150);
    });
  }, { streaming: true });
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.upstreamResponse': '500ms' });
  const socket = await connectRaw(tb);
  socket.write(`PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\nContent-Length: 8\r\n\r\n`);
  for (let i = 0; i < 8; i++) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    socket.write('y'); // 1.2 s of upload in all, never 500 ms without a byte
  }
  let reply = '';
  socket.on('data', (d: Buffer) => (reply += d.toString('latin1')));
  await new Promise((resolve) => {
    socket.once('close', resolve);
    socket.on('data', () => reply.endsWith('\r\n0\r\n\r\n') && resolve(undefined));
  });
  t.match(reply, /^HTTP\/1\.1 202 /, 'the slow upload was answered');
  t.match(reply, /\r\n\r\n1\r\n8\r\n0\r\n\r\n$/, 'with every byte forwarded (the upstream counted 8)');
  socket.destroy();
  const download = await ask(tb, { path: '/v2/x/blobs/sha256:slow' });
  t.equal(download.status, 200);
  t.equal(download.body.toString(), 'xxxxxxxx', 'a download of 1.2 s, a byte every 150 ms, arrives whole');
});

t.test('informational answers (102, 103 Early Hints) are not relayed; the final answer is', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeProcessing();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const reply = await converse(tb, `GET /v2/ HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 200 OK\r\n/, 'the first line the client reads is the final answer');
  t.notMatch(reply, /HTTP\/1\.1 1\d\d/, 'no informational answer relayed');
  t.match(reply, /\r\n2\r\n\{\}\r\n0\r\n\r\n$/, 'and its body');
});

t.test('the client idle timeout never cuts the wait for the answer to a completed body', async (t) => {
  // A registry answers the final PUT of a big blob only after re-hashing it.
  const up = await startUpstream(t, (_req, res) => setTimeout(() => res.writeHead(201).end(), 800));
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.clientIdle': '200ms', 'timeouts.upstreamResponse': '5s' });
  const answer = await ask(tb, { method: 'PUT', path: '/v2/x/blobs/uploads/u?digest=sha256%3Aa', body: 'last chunk' });
  t.equal(answer.status, 201);
});

t.test('the client idle timeout cuts a body that stops arriving', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    req.on('error', () => undefined);
    req.resume();
    req.on('end', () => res.end());
  }, { streaming: true });
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.clientIdle': '300ms' });
  const socket = await connectRaw(tb);
  socket.write(`PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\nContent-Length: 100\r\n\r\nonly ten b`);
  await new Promise((resolve) => socket.once('close', resolve));
  t.pass('berth closed the stalled connection');
});

t.test('a reloaded client idle limit holds for a request pipelined on a connection from before the reload', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    req.on('error', () => undefined);
    req.resume();
    if (req.url === '/v2/slow') setTimeout(() => res.end('{}'), 500);
    else req.on('end', () => res.end());
  }, { streaming: true });
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.clientIdle': '1h' });
  const socket = await connectRaw(tb);
  socket.resume(); // the first answer is read, so that the close is seen
  socket.write(`GET /v2/slow HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n`);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const layer = new Map(Object.entries({ upstream: up.url, listen: '127.0.0.1:0', 'tls.cert': tb.pki.certFile, 'tls.key': tb.pki.keyFile, 'timeouts.clientIdle': '300ms' }).map(([key, value]) => [key, { value, source: 'test' }]));
  t.ok(tb.berth.reconfigure(buildConfig([layer])).applied.includes('timeouts.clientIdle'), 'applied at once');
  // Behind an answer still due, the next request ends no keep-alive wait, so Node does not
  // renew the connection's limit (set when it was accepted): berth does, at its start.
  const started = Date.now();
  socket.write(`PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\nContent-Length: 100\r\n\r\nonly ten b`);
  const closed = await Promise.race([new Promise((resolve) => socket.once('close', () => resolve(true))), new Promise((resolve) => setTimeout(resolve, 5000, false))]);
  socket.destroy();
  t.ok(closed, `the stalled body's connection closed by the new limit (after ${Date.now() - started} ms)`);
});

t.test('an upstream reset mid-response closes the client connection instead of faking an end', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/v2/') return void res.end('ok');
    res.writeHead(200, { 'content-length': '1000000' });
    res.write(Buffer.alloc(1000));
    setTimeout(() => res.socket!.destroy(), 50);
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const outcome = await new Promise<string>((resolve) => {
    ask(tb, { path: '/v2/x/blobs/sha256:a' }).then(
      (a) => resolve(`completed with ${a.body.length} bytes`),
      (err: NodeJS.ErrnoException) => resolve(`failed: ${err.code ?? err.message}`),
    );
  });
  t.match(outcome, /^failed/, `the client sees a cut response (${outcome})`);
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});

t.test('garbage instead of HTTP from the upstream gives 502', async (t) => {
  const garbage = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n'));
  });
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  t.teardown(() => garbage.close());
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${(garbage.address() as AddressInfo).port}` });
  const answer = await ask(tb, { path: '/v2/' });
  t.equal(answer.status, 502);
  t.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
});
