import t from 'tap';
import { connectionTokens } from '../../../src/proxy/hopByHop.js';
import { stripResponseHopByHop } from '../../../src/proxy/response/hopByHop.js';
import type { HeaderPairs } from '../../../src/proxy/response/headers.js';

t.test('response hop-by-hop headers are removed, repeated end-to-end headers kept', async (t) => {
  const headers: HeaderPairs = [
    ['Connection', 'X-Internal'],
    ['Connection', 'keep-alive'],
    ['X-Internal', '1'],
    ['Keep-Alive', 'timeout=5'],
    ['Transfer-Encoding', 'chunked'],
    ['Proxy-Authenticate', 'Basic'],
    ['Content-Length', '10'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Docker-Upload-UUID', 'u'],
  ];
  const ctx = { status: 200, headers, upstream: new URL('http://u'), publicOrigin: '' };
  stripResponseHopByHop(ctx);
  t.same(ctx.headers, [
    ['Content-Length', '10'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Docker-Upload-UUID', 'u'],
  ]);
});

t.test('connectionTokens: the names a Connection header lists, lowercased', async (t) => {
  const tokens = (value: string | string[] | undefined): string[] => [...connectionTokens(value)].sort();
  t.same(tokens(undefined), []);
  t.same(tokens(''), []);
  t.same(tokens('keep-alive'), ['keep-alive']);
  t.same(tokens('Keep-Alive'), ['keep-alive']);
  t.same(tokens('Close'), ['close']);
  t.same(tokens('KEEP-ALIVE'), ['keep-alive']);
  t.same(tokens(' X-A ,x-b,, Keep-Alive'), ['keep-alive', 'x-a', 'x-b']);
  t.same(tokens(['close', 'X-Internal']), ['close', 'x-internal']);
  t.equal(connectionTokens('keep-alive'), connectionTokens('keep-alive'), 'the common values are parsed once');
});
