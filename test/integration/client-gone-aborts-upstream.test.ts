import { once } from 'node:events';
import type http from 'node:http';
import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { ask, connectRaw } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * Each case leaves at a different moment; the upstream must see its request end
 * (connection closed) within a second, and berth must go on serving.
 */
async function upstreamSeesClose(req: http.IncomingMessage, left: number): Promise<number> {
  if (!req.socket.destroyed) await new Promise((resolve) => req.socket.once('close', resolve));
  return Date.now() - left;
}

t.test('client leaves mid-upload', async (t) => {
  let upstreamReq: http.IncomingMessage | undefined;
  let firstBytes!: () => void;
  const arrived = new Promise<void>((resolve) => (firstBytes = resolve));
  const up = await startUpstream(
    t,
    (req, res) => {
      if (req.method === 'GET') return void res.end('ok');
      upstreamReq = req;
      req.on('error', () => undefined); // the abort is what this test expects
      req.once('data', firstBytes);
    },
    { streaming: true },
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  const socket = await connectRaw(tb);
  socket.write(`PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\nHost: localhost:${tb.port}\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n${'a'.repeat(0x10000)}\r\n`);
  await arrived;
  const left = Date.now();
  socket.destroy();
  const ms = await upstreamSeesClose(upstreamReq!, left);
  t.ok(ms < 1000, `upstream request closed ${ms} ms after the client left`);
  t.notOk(upstreamReq!.complete, 'the upstream saw an incomplete body, not a finished upload');
  const line = await waitForLog(tb, (l) => l.msg === 'request' && l.method === 'PATCH');
  t.equal(line.status, 499);
  t.equal(line.error, 'client_gone');
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});

t.test('client leaves after its body, while the upstream is still working on the answer', async (t) => {
  let upstreamReq: http.IncomingMessage | undefined;
  let bodyDone!: () => void;
  const complete = new Promise<void>((resolve) => (bodyDone = resolve));
  const up = await startUpstream(
    t,
    (req, res) => {
      if (req.method === 'GET') return void res.end('ok');
      upstreamReq = req;
      req.resume();
      req.on('end', bodyDone); // and never answer, like a registry hashing a large blob
    },
    { streaming: true },
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  const socket = await connectRaw(tb);
  socket.write(`PUT /v2/x/blobs/uploads/u?digest=sha256%3Aa HTTP/1.1\r\nHost: localhost:${tb.port}\r\nContent-Length: 5\r\n\r\nhello`);
  await complete;
  const left = Date.now();
  socket.destroy();
  const ms = await upstreamSeesClose(upstreamReq!, left);
  t.ok(ms < 1000, `upstream request closed ${ms} ms after the client left`);
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});

t.test('client leaves mid-download', async (t) => {
  let upstreamReq: http.IncomingMessage | undefined;
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/v2/') return void res.end('ok');
    upstreamReq = req;
    res.writeHead(200, { 'content-length': String(1 << 30) });
    const chunk = Buffer.alloc(1 << 16, 7);
    const pump = (): void => {
      while (res.write(chunk));
      res.once('drain', pump);
    };
    pump();
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const socket = await connectRaw(tb);
  socket.write(`GET /v2/x/blobs/sha256:big HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n`);
  await once(socket, 'data');
  const left = Date.now();
  socket.destroy();
  const ms = await upstreamSeesClose(upstreamReq!, left);
  t.ok(ms < 1000, `upstream request closed ${ms} ms after the client left`);
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth keeps serving');
});
