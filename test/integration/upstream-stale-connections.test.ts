import net from 'node:net';
import t, { type Test } from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';

/**
 * An upstream closes a kept-alive connection just as berth sends the next request on it: a
 * Go server's or a balancer's idle cut, which announces nothing (no `Keep-Alive: timeout`).
 * berth retries a GET or HEAD once on a new connection when no byte of the answer arrived,
 * and never a request with a body.
 */

type Cut = 'close' | 'reset' | 'half-head' | 'half-body';

interface Attempt {
  readonly method: string;
  readonly path: string;
  /** Which upstream connection (from 0), and which request on it (from 0). */
  readonly connection: number;
  readonly onConnection: number;
}

interface RawUpstream {
  readonly url: string;
  readonly attempts: Attempt[];
  connections: number;
  /** Which requests the upstream cuts instead of answering: none, those on a reused connection, or all. */
  cuts: 'none' | 'reused' | 'all';
  /** How: closes the connection, resets it, or closes it in the middle of the answer's head or body. */
  how: Cut;
  /**
   * Closes each connection this long after its last answer (0: never), as seen across a
   * network whose one-way delay is `finFlightMs`: its FIN reaches berth that much later, and
   * a request that arrives meanwhile is never answered.
   */
  idleCloseMs: number;
  finFlightMs: number;
}

/** A plain-HTTP/1.1 upstream on raw sockets, to close connections at the moment a test needs. */
async function startRawUpstream(t: Test): Promise<RawUpstream> {
  const sockets = new Set<net.Socket>();
  const up: RawUpstream = { url: '', attempts: [], connections: 0, cuts: 'none', how: 'close', idleCloseMs: 0, finFlightMs: 0 };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const connection = up.connections++;
    let onConnection = 0;
    let buffered = Buffer.alloc(0);
    let idle: NodeJS.Timeout | undefined;
    let closing = false;
    socket.on('data', (chunk: Buffer) => {
      if (closing) return; // after the cut: never read
      clearTimeout(idle);
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.subarray(end + 4 + length);
        const [method = '', path = ''] = head.split(' ');
        up.attempts.push({ method, path, connection, onConnection });
        if (up.cuts === 'all' || (up.cuts === 'reused' && onConnection > 0)) {
          if (up.how === 'close') socket.end();
          else if (up.how === 'reset') socket.resetAndDestroy();
          else if (up.how === 'half-head') socket.end('HTTP/1.1 200 OK\r\nContent-Le');
          else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
          return;
        }
        onConnection++;
        const body = `${method} ${path} on ${connection}`;
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${method === 'HEAD' ? 0 : body.length}\r\n\r\n${method === 'HEAD' ? '' : body}`);
        if (up.idleCloseMs > 0) {
          idle = setTimeout(() => {
            closing = true;
            setTimeout(() => socket.end(), up.finFlightMs);
          }, up.idleCloseMs);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return Object.assign(up, { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` });
}

async function setup(t: Test): Promise<{ up: RawUpstream; tb: TestBerth }> {
  const up = await startRawUpstream(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  // One answered request leaves a kept-alive connection in berth's pool.
  const first = await ask(tb, { method: 'GET', path: '/v2/' });
  t.equal(first.status, 200, 'the first request is answered');
  return { up, tb };
}

const retried = (tb: TestBerth): Record<string, unknown>[] => tb.logs.filter((l) => l.msg === 'the registry cut the connection before answering: the request was sent again on a new connection');

for (const how of ['close', 'reset'] as const) {
  for (const method of ['GET', 'HEAD'] as const) {
    t.test(`a ${method} sent on a connection the upstream ${how === 'close' ? 'closes' : 'resets'} is retried once on a new one`, async (t) => {
      const { up, tb } = await setup(t);
      up.cuts = 'reused';
      up.how = how;
      const answer = await ask(tb, { method, path: '/v2/library/alpine/manifests/latest' });
      t.equal(answer.status, 200, 'the client gets the registry\'s answer, not a 502');
      if (method === 'GET') t.equal(answer.body.toString(), 'GET /v2/library/alpine/manifests/latest on 1', 'answered on a second connection');
      t.same(
        up.attempts.slice(1).map((a) => [a.method, a.connection, a.onConnection]),
        [[method, 0, 1], [method, 1, 0]],
        'the upstream saw the request on the stale connection, then once on a new one',
      );
      t.equal(retried(tb).length, 1, 'the retry is logged');
      t.match(retried(tb)[0], { method, path: '/v2/library/alpine/manifests/latest' });
      const metrics = tb.berth.registry.getSingleMetricAsString('berth_upstream_retries_total');
      t.match(await metrics, /berth_upstream_retries_total 1\b/, 'and counted');
    });
  }
}

for (const method of ['PATCH', 'PUT', 'POST'] as const) {
  t.test(`a ${method} with a body is never retried: the client gets a 502 and retries itself`, async (t) => {
    const { up, tb } = await setup(t);
    up.cuts = 'reused';
    const answer = await ask(tb, { method, path: '/v2/r/blobs/uploads/u1', body: 'layer bytes' });
    t.equal(answer.status, 502);
    t.equal(up.attempts.filter((a) => a.method === method).length, 1, 'sent upstream once');
    t.equal(retried(tb).length, 0);
  });
}

t.test('a GET cut in the middle of the answer\'s head is retried (as nginx\'s proxy_next_upstream error does)', async (t) => {
  const { up, tb } = await setup(t);
  up.cuts = 'reused';
  up.how = 'half-head';
  const answer = await ask(tb, { method: 'GET', path: '/v2/r/blobs/sha256:1' });
  t.equal(answer.status, 200);
  t.equal(up.attempts.filter((a) => a.path === '/v2/r/blobs/sha256:1').length, 2, 'sent upstream twice');
  t.equal(retried(tb).length, 1);
});

t.test('a GET whose answer\'s head arrived is never sent again: the client sees the cut', async (t) => {
  const { up, tb } = await setup(t);
  up.cuts = 'reused';
  up.how = 'half-body';
  const answer = await ask(tb, { method: 'GET', path: '/v2/r/blobs/sha256:2' }).catch((err: Error) => err);
  t.ok(answer instanceof Error || answer.status === 200, 'the head was relayed, then the connection closed');
  t.equal(up.attempts.filter((a) => a.path === '/v2/r/blobs/sha256:2').length, 1, 'sent upstream once');
  t.equal(retried(tb).length, 0);
});

t.test('the retry is made once: when the new connection fails too, the client gets a 502', async (t) => {
  const { up, tb } = await setup(t);
  up.cuts = 'all';
  const answer = await ask(tb, { method: 'GET', path: '/v2/r/tags/list' });
  t.equal(answer.status, 502);
  t.same(
    up.attempts.filter((a) => a.path === '/v2/r/tags/list').map((a) => [a.connection, a.onConnection]),
    [[0, 1], [1, 0]],
    'sent on the stale connection, then once on a new one',
  );
  t.equal(retried(tb).length, 1);
});

t.test('clients that pace their GETs to the upstream\'s idle cut all get answers', async (t) => {
  const { up, tb } = await setup(t);
  up.idleCloseMs = 100;
  up.finFlightMs = 10;
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) {
    // Around the cut: a little before it, at it, and while its FIN is on the way.
    await new Promise((resolve) => setTimeout(resolve, 100 + (i % 5) * 3));
    statuses.push((await ask(tb, { method: 'GET', path: `/v2/r/manifests/${i}` })).status);
  }
  t.same(statuses.filter((s) => s !== 200), [], 'no 502 among 20 paced requests');
});
