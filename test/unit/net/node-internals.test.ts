// berth leans on five things Node does not document, or documents only in part; each has
// no public replacement (said where it is used). These tests fail, naming the one that
// changed, when a Node upgrade takes one away, before the integration tests fail in less
// obvious ways.
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { makeTestPki } from '../../helpers/tls.js';

const listen = async (server: net.Server): Promise<number> => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
};

/** One raw request; resolves with everything the server sent until it closed. */
const raw = async (port: number, request: string): Promise<string> => {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.end(request);
  let text = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
  await once(socket, 'close');
  return text;
};

t.test('socket._httpMessage is the response being written on the connection (server/https.ts clientError)', async (t) => {
  const seen: unknown[] = [];
  const server = http.createServer((req, res) => {
    const socket = req.socket as net.Socket & { _httpMessage?: unknown };
    seen.push(socket._httpMessage === res);
    res.on('close', () => seen.push(socket._httpMessage ?? null));
    res.end('ok');
  });
  t.teardown(() => server.close());
  const port = await listen(server);
  await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.same(seen, [true, null], 'set while the response is written, cleared once it is done');
});

t.test("a response that closes its connection does so through the socket's destroySoon (net/linger.ts)", async (t) => {
  let putOff = 0;
  const server = http.createServer((req, res) => {
    const socket = req.socket;
    const close = socket.destroySoon;
    socket.destroySoon = function patched(): void {
      putOff++;
      Reflect.deleteProperty(socket, 'destroySoon');
      close.call(socket);
    };
    res.shouldKeepAlive = false;
    res.end('ok');
  });
  t.teardown(() => server.close());
  const port = await listen(server);
  const answer = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  t.match(answer, /^HTTP\/1\.1 200 /);
  t.equal(putOff, 1, 'called once, on the instance, when the answer finished');
});

t.test("a TLS server starts the handshake from its own 'connection' listener, which can be run later (net/accept.ts)", async (t) => {
  const pki = await makeTestPki();
  const server = https.createServer({ cert: pki.cert, key: pki.key }, (_req, res) => res.end('ok'));
  t.teardown(() => server.close());
  const tlsListeners = server.listeners('connection') as ((socket: net.Socket) => void)[];
  t.equal(tlsListeners.length, 1, "one listener of Node's own");
  server.removeAllListeners('connection');
  let ours = 0;
  server.on('connection', (socket: net.Socket) => {
    ours++;
    setTimeout(() => {
      for (const listener of tlsListeners) listener.call(server, socket);
    }, 20);
  });
  const port = await listen(server);
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/', ca: pki.ca, servername: 'localhost', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  t.equal(ours, 1);
  t.equal(body, 'ok', 'the handshake ran when handed over');
});

t.test("a TLS server has _setServerData, which node:cluster calls on a worker's listener (server/https.ts)", async (t) => {
  const pki = await makeTestPki();
  const server = https.createServer({ cert: pki.cert, key: pki.key }) as https.Server & { _setServerData?: unknown; _getServerData?: unknown };
  t.equal(typeof server._setServerData, 'function');
  t.equal(typeof server._getServerData, 'function', 'with its counterpart, which the first worker to listen reports');
});

t.test('a request without body headers arrives ended (server/https.ts, proxy/handler.ts guardFraming)', async (t) => {
  // optimizeEmptyRequests (Node 24.12 and later; Node 22 ignores it): such a request has no
  // body for the parser either (RFC 9112 6.3; a body header beyond maxHeadersCount cannot
  // hide, Node refuses the header section), and no 'data' or 'end' follows. berth's framing
  // guard relies on that; a request with a body header still streams as before.
  const seen: { url: string | undefined; ended: boolean; data: number }[] = [];
  const server = http.createServer({ optimizeEmptyRequests: true } as http.ServerOptions, (req, res) => {
    const entry = { url: req.url, ended: req.readableEnded, data: 0 };
    seen.push(entry);
    req.on('data', (chunk: Buffer) => (entry.data += chunk.length));
    req.on('end', () => res.end('ok'));
    if (req.readableEnded) res.end('ok');
  });
  t.teardown(() => server.close());
  const port = await listen(server);
  const answer = await raw(port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloDELETE /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.equal(answer.match(/HTTP\/1\.1 200 /g)?.length, 3, 'three answers');
  const optimized = seen[0]!.ended;
  if (!optimized) t.equal(Number(process.versions.node.split('.')[0]), 22, 'only a Node without the option hands it over unended');
  t.same(seen, [
    { url: '/a', ended: optimized, data: 0 },
    { url: '/b', ended: false, data: 5 },
    { url: '/c', ended: optimized, data: 0 },
  ], 'bodiless requests ended on arrival; a framed body streams');
});
