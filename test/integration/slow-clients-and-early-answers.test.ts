import crypto from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { ask, bodyAfterAnswer, connectRaw } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

// Slow and greedy clients, and upstreams that answer early or reset: berth cuts what must
// be cut, never what keeps moving, and its connections stay clean.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a header section that never finishes is cut after timeouts.headers', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.headers': '1s' });
  const socket = await connectRaw(tb);
  const started = Date.now();
  socket.write(`GET /v2/ HTTP/1.1\r\nHost: localhost:${tb.port}\r\n`);
  const drip = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 200); // slowloris
  let reply = '';
  socket.on('data', (d: Buffer) => (reply += d.toString()));
  await once(socket, 'close');
  clearInterval(drip);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 900 && elapsed < 3000, `cut after ${elapsed} ms`);
  t.match(reply, /^(HTTP\/1\.1 408 |$)/, 'with 408, or simply closed');
  t.equal(up.seen.length, 0);
});

t.test('an idle kept-alive connection is closed after timeouts.keepAlive', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.keepAlive': '1s' });
  const socket = await connectRaw(tb);
  socket.write(`GET /v2/ HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n`);
  await once(socket, 'data');
  const answered = Date.now();
  await once(socket, 'close');
  const idle = Date.now() - answered;
  t.ok(idle >= 900 && idle < 3000, `closed after ${idle} ms idle`);
});

t.test('a body that keeps arriving slowly is never cut, however long the idle limit is exceeded in total', async (t) => {
  const digests: string[] = [];
  const up = await startUpstream(t, (req, res) => {
    const hash = crypto.createHash('sha256');
    req.on('data', (c: Buffer) => hash.update(c));
    req.on('end', () => {
      digests.push(hash.digest('hex'));
      res.writeHead(201, { 'content-length': '0' }).end();
    });
  }, { streaming: true });
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.clientIdle': '500ms' });
  const body = crypto.randomBytes(16 * 1024);
  const pieces = 10; // one every 300 ms: 3 s in all, six times the idle limit
  const socket = await connectRaw(tb);
  socket.write(`PUT /v2/x/blobs/uploads/u?digest=sha256%3Ax HTTP/1.1\r\nHost: localhost:${tb.port}\r\nContent-Length: ${body.length}\r\n\r\n`);
  for (let i = 0; i < pieces; i++) {
    await sleep(300);
    socket.write(body.subarray((i * body.length) / pieces, ((i + 1) * body.length) / pieces));
  }
  const [reply] = (await once(socket, 'data')) as [Buffer];
  t.match(reply.toString(), /^HTTP\/1\.1 201 /);
  t.same(digests, [crypto.createHash('sha256').update(body).digest('hex')], 'every byte arrived');
  socket.destroy();
});

t.test('an upstream that answers 401 before reading the body: the client gets the 401, and nothing leaks into the next requests', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.method === 'PUT') {
      // Answer at once, as a registry does for a missing token, without reading the body.
      return void res.writeHead(401, { 'www-authenticate': 'Bearer realm="https://auth.example/token"', 'content-length': '0' }).end();
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-length': '2' }).end('{}'));
  }, { streaming: true });
  const sockets: unknown[] = [];
  up.server.prependListener('request', (req: { socket: unknown }) => sockets.push(req.socket));
  const tb = await startTestBerth(t, { upstream: up.url });
  const body = crypto.randomBytes(8 << 20);
  // The body contains something that would parse as a request if it leaked into a connection.
  Buffer.from('GET /v2/leaked HTTP/1.1\r\nHost: x\r\n\r\n').copy(body, 1 << 20);
  const answer = await ask(tb, { method: 'PUT', path: '/v2/x/blobs/uploads/u?digest=sha256%3Ax', body }).catch((err: NodeJS.ErrnoException) => ({ status: err.code }));
  t.equal(answer.status, 401, 'the client gets the early answer');
  for (let i = 0; i < 5; i++) t.equal((await ask(tb, { path: `/v2/after/${i}` })).status, 200);
  t.same(
    up.seen.map((s) => s.url),
    ['/v2/x/blobs/uploads/u?digest=sha256%3Ax', '/v2/after/0', '/v2/after/1', '/v2/after/2', '/v2/after/3', '/v2/after/4'],
    'the upstream saw exactly the requests the client sent: no body bytes read as a request',
  );
  // The connection the PUT went out on was mid-body when the 401 came: berth drops it, never reuses it.
  t.notOk(sockets.slice(1).includes(sockets[0]), 'no later request went out on the connection of the PUT cut short');
  t.ok((sockets[0] as { destroyed: boolean }).destroyed, 'that connection is closed');
});

t.test('an upstream that resets in the middle of a request body: 502, and berth keeps serving', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.method === 'PATCH') {
      let seen = 0;
      req.on('data', (c: Buffer) => {
        seen += c.length;
        if (seen > 1 << 20) req.socket.destroy();
      });
      return;
    }
    res.end('{}');
  }, { streaming: true });
  const tb = await startTestBerth(t, { upstream: up.url });
  const answer = await ask(tb, { method: 'PATCH', path: '/v2/x/blobs/uploads/u', body: crypto.randomBytes(8 << 20) }).catch((err: NodeJS.ErrnoException) => ({ status: err.code, body: Buffer.alloc(0) }));
  t.ok(answer.status === 502 || answer.status === 'ECONNRESET' || answer.status === 'EPIPE', `the client is told (${answer.status})`);
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});

t.test('an early answer (nginx\'s 413, then lingering close): berth keeps reading the body, so the client reads the answer instead of a reset', async (t) => {
  // nginx with client_max_body_size answers as soon as the headers are read, with
  // Connection: close, then half-closes and reads and drops what still arrives. A client
  // that asked to close (as Node's agent-less requests do) is still sending when that answer
  // reaches it; if berth closed the connection now, the unread body makes the kernel send a
  // reset, and the client sees EPIPE instead of the 413.
  const upstream = net.createServer({ allowHalfOpen: true }, (socket) => {
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.end('HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\n\r\ntoo large\r\n');
      socket.resume(); // lingering: read and drop, until berth stops sending
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}` });

  const socket = await connectRaw(tb);
  const errors: string[] = [];
  socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
  let reply = '';
  socket.on('data', (d: Buffer) => (reply += d.toString()));
  const total = 8 << 20;
  const chunk = crypto.randomBytes(256 << 10);
  socket.write(`PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`);
  socket.write(chunk);
  while (!reply.includes('\r\n\r\n')) await sleep(5);
  t.match(reply, /^HTTP\/1\.1 413 /, 'the 413 arrives while the body is still being sent');
  await sleep(100); // time for berth to close the connection, if it were going to
  let sent = chunk.length;
  while (sent < total && errors.length === 0 && !socket.destroyed) {
    if (!socket.write(chunk)) await once(socket, 'drain');
    sent += chunk.length;
  }
  t.same(errors, [], 'the rest of the body goes out without a reset or EPIPE');
  t.equal(sent, total, 'all of it');
  // The client asked to close: berth closes once the body is in, without the client ending first.
  await once(socket, 'end');
  t.pass('then berth closes the connection, as the client asked');
  socket.end();
  await once(socket, 'close');
  t.equal((await ask(tb, { path: '/v2/' })).status, 413, 'berth keeps serving (this upstream answers 413 to all)');
  const line = await waitForLog(tb, (l) => l.msg === 'request' && l.method === 'PATCH');
  t.equal(line.status, 413, 'logged as 413');
});

t.test("berth's own early answers (a dead upstream's 502, a misdirected 421) linger too: the client reads the answer, not a reset", async (t) => {
  const dead = net.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise((resolve) => dead.close(resolve));
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${deadPort}`, serverNames: ['localhost'] });
  const total = 8 << 20;
  for (const [what, head, status] of [
    ['dead upstream', `PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\n`, 502],
    ['dead upstream, client asked to close', `PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n`, 502],
    ['misdirected', `PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: other.example\r\n`, 421],
  ] as const) {
    const r = await bodyAfterAnswer(await connectRaw(tb), head, total);
    t.match(r.reply, new RegExp(`^HTTP/1\\.1 ${status} `), `${what}: the ${status} arrives while the body is still being sent`);
    t.match(r.reply, /\r\nconnection: close\r\n/i, `${what}: and says the connection will close`);
    t.same(r.errors, [], `${what}: the rest of the body goes out without a reset or EPIPE`);
    t.equal(r.sent, total, `${what}: all of it`);
    t.ok(r.endedByServer, `${what}: berth closes the connection once the body is in`);
    t.equal((r.reply.match(/HTTP\/1\.1 /g) ?? []).length, 1, `${what}: one answer, no part of the body read as a request`);
  }
});

t.test('a TLS handshake that never completes is cut after timeouts.handshake (Node would wait 120 s)', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url, 'timeouts.handshake': '1s' });
  for (const [what, bytes] of [
    ['nothing sent', Buffer.alloc(0)],
    ['half a ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])],
  ] as const) {
    const socket = net.connect(tb.port, '127.0.0.1');
    await once(socket, 'connect');
    const started = Date.now();
    socket.on('error', () => undefined);
    if (bytes.length) socket.write(bytes);
    const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(5_000).then(() => false)]);
    socket.destroy();
    const elapsed = Date.now() - started;
    t.ok(closed && elapsed >= 900 && elapsed < 3000, `${what}: cut after ${elapsed} ms`);
  }
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});
