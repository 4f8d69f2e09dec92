import t from 'tap';
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
