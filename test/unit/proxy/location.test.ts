import t from 'tap';
import { rewriteLocation, rewritesLocation } from '../../../src/proxy/response/location.js';

const upstream = new URL('http://127.0.0.1:5000');
const publicOrigin = 'https://localhost:8443';

t.test('statuses whose Location is rewritten', async (t) => {
  for (const status of [201, 202, 204, 300, 301, 302, 303, 307, 308]) t.ok(rewritesLocation(status), `${status}`);
  for (const status of [100, 200, 203, 206, 400, 401, 404, 500]) t.notOk(rewritesLocation(status), `${status}`);
});

t.test('every Location header is rewritten, other headers are not', async (t) => {
  const headers = [
    ['Location', 'http://127.0.0.1:5000/v2/a?_state=x%3D'],
    ['location', 'http://127.0.0.1:5000/v2/b'],
    ['Content-Location', 'http://127.0.0.1:5000/v2/c'],
    ['Link', '<http://127.0.0.1:5000/v2/d>; rel="next"'],
  ].flat();
  const ctx = { status: 202, headers, upstream, publicOrigin };
  rewriteLocation(ctx);
  t.same(ctx.headers, [
    ['Location', 'https://localhost:8443/v2/a?_state=x%3D'],
    ['location', 'https://localhost:8443/v2/b'],
    ['Content-Location', 'http://127.0.0.1:5000/v2/c'],
    ['Link', '<http://127.0.0.1:5000/v2/d>; rel="next"'],
  ].flat());
});

t.test('a 200 keeps its Location', async (t) => {
  const ctx = { status: 200, headers: ['Location', 'http://127.0.0.1:5000/v2/a'], upstream, publicOrigin };
  rewriteLocation(ctx);
  t.equal(ctx.headers[1], 'http://127.0.0.1:5000/v2/a');
});
