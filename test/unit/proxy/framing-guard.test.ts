import type http from 'node:http';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { addressSet } from '../../../src/net/cidr.js';
import { createContext, type BodyFraming } from '../../../src/proxy/context.js';
import { guardFraming } from '../../../src/proxy/handler.js';

// Defence in depth behind the header-field limit: should Node's parser ever deliver body
// bytes beyond the framing berth read (none, or a Content-Length), berth stops at once.
// Node 22+ refuses the header counts that once made them differ, so this is checked here
// with a stand-in request stream.

function run(body: BodyFraming, contentLength: string | undefined, chunks: readonly string[], counted?: (bytes: number) => void): boolean {
  const req = new PassThrough();
  const headers: http.IncomingHttpHeaders = contentLength === undefined ? {} : { 'content-length': contentLength };
  const ctx = createContext({ upstream: new URL('http://r:5000'), publicOrigin: undefined, trustedProxies: addressSet([]) }, { method: 'POST', url: '/v2/', headers, socket: {} });
  ctx.body = body;
  let mismatches = 0;
  const watch = { bytesIn: 0, framingBroken: () => void mismatches++, bodyEnded: () => undefined };
  guardFraming(req as unknown as http.IncomingMessage, ctx, watch);
  for (const chunk of chunks) req.write(chunk);
  counted?.(watch.bytesIn);
  return mismatches === 1;
}

t.test('the guard fires once, at the first byte beyond the framing berth read', async (t) => {
  t.notOk(run('none', undefined, []), 'no body, none seen');
  t.ok(run('none', undefined, ['x']), 'no body framed, one byte arrives: mismatch');
  t.ok(run('none', undefined, ['x', 'y', 'z']), 'and only once');
  t.notOk(run('length', '5', ['he', 'llo']), 'exactly Content-Length');
  t.ok(run('length', '5', ['hello', '!']), 'one byte more: mismatch');
  t.ok(run('length', '0', ['a']), 'Content-Length: 0 and a byte');
  t.notOk(run('chunked', undefined, ['a'.repeat(100_000)]), 'chunked: the parser frames it, any length');
});

t.test('every body byte is counted for the access line, past a mismatch too', async (t) => {
  run('length', '5', ['he', 'llo'], (bytes) => t.equal(bytes, 5));
  run('none', undefined, ['x', 'yz'], (bytes) => t.equal(bytes, 3));
  run('chunked', undefined, ['a'.repeat(70_000), 'b'], (bytes) => t.equal(bytes, 70_001));
});

t.test('the watch ends with the body: `bodyEnded` runs once, and the byte counter leaves the request', async (t) => {
  // Left on a request nobody read (a GET), the counter would be deleted from the request's
  // listener table by Node's own clean-up when the answer finishes, which costs that table
  // its fast shape; taken off at 'end' (removeListener keeps the shape), nothing is left to delete.
  for (const [body, contentLength, chunks] of [['none', undefined, []], ['length', '5', ['he', 'llo']], ['chunked', undefined, ['a', 'b']]] as const) {
    const req = new PassThrough();
    const ctx = createContext({ upstream: new URL('http://r:5000'), publicOrigin: undefined, trustedProxies: addressSet([]) }, { method: 'PUT', url: '/v2/', headers: contentLength === undefined ? {} : { 'content-length': contentLength }, socket: {} });
    ctx.body = body;
    let ended = 0;
    guardFraming(req as unknown as http.IncomingMessage, ctx, { bytesIn: 0, framingBroken: () => t.fail('no mismatch'), bodyEnded: () => void ended++ });
    t.equal(req.listenerCount('data'), 1, `${body}: the counter listens while the body arrives`);
    for (const chunk of chunks) req.write(chunk);
    req.end();
    await new Promise((resolve) => req.once('end', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(ended, 1, `${body}: ended once`);
    t.equal(req.listenerCount('data'), 0, `${body}: no listener left for Node's clean-up to delete`);
  }
});

t.test('a request Node ended as it arrived (no body headers): `bodyEnded` runs at once, nothing listens', async (t) => {
  // Node 24 ends a request without Content-Length or Transfer-Encoding before the handler
  // sees it (optimizeEmptyRequests); such a request has no body for its parser either. No
  // 'data' or 'end' will come, so waiting for them would leave the request's wait unmarked.
  const req = new PassThrough();
  req.end();
  req.resume();
  await new Promise((resolve) => req.once('end', resolve));
  t.ok(req.readableEnded);
  const ctx = createContext({ upstream: new URL('http://r:5000'), publicOrigin: undefined, trustedProxies: addressSet([]) }, { method: 'GET', url: '/v2/', headers: {}, socket: {} });
  ctx.body = 'none';
  let ended = 0;
  guardFraming(req as unknown as http.IncomingMessage, ctx, { bytesIn: 0, framingBroken: () => t.fail('no mismatch'), bodyEnded: () => void ended++ });
  t.equal(ended, 1, 'ended, synchronously');
  t.equal(req.listenerCount('data'), 0, 'no byte counter');
  t.equal(req.listenerCount('end'), 0, 'no end listener');

  // A body framing berth read still gets its guard, whatever the stream's state.
  const later = new PassThrough();
  const framed = createContext({ upstream: new URL('http://r:5000'), publicOrigin: undefined, trustedProxies: addressSet([]) }, { method: 'PUT', url: '/v2/', headers: { 'content-length': '1' }, socket: {} });
  framed.body = 'length';
  guardFraming(later as unknown as http.IncomingMessage, framed, { bytesIn: 0, framingBroken: () => undefined, bodyEnded: () => undefined });
  t.equal(later.listenerCount('data'), 1, 'a framed body is counted and guarded');
});
