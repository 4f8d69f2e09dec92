import t from 'tap';
import { UploadClock, expiredToken, explainAnswer, type Asked } from '../../../src/observe/explain.js';

const jwt = (claims: unknown): string => `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
const NOW = 1_800_000_000_000; // ms

t.test('expiredToken: reads exp (and iat or nbf) without trusting the token', async (t) => {
  t.same(expiredToken(jwt({ exp: 1_800_000_000 - 60, iat: 1_800_000_000 - 1860 }), NOW), { lifetimeSeconds: 1800, expiredSecondsAgo: 60 });
  t.same(expiredToken(jwt({ exp: 1_800_000_000 - 60, nbf: 1_800_000_000 - 960 }), NOW), { lifetimeSeconds: 900, expiredSecondsAgo: 60 }, 'nbf when there is no iat');
  t.same(expiredToken(jwt({ exp: 1_800_000_000 }), NOW), { lifetimeSeconds: undefined, expiredSecondsAgo: 0 }, 'expiring this second counts');
  t.same(expiredToken(jwt({ exp: 1_800_000_000 - 10, iat: 1_800_000_000 }), NOW)?.lifetimeSeconds, undefined, 'issued after it expired: no lifetime');
  for (const [what, auth] of [
    ['still valid', jwt({ exp: 1_800_000_001 })],
    ['no exp', jwt({ sub: 'a' })],
    ['exp a string', jwt({ exp: '1' })],
    ['claims not JSON', 'Bearer a.bm90IGpzb24.c'],
    ['claims null', jwt(null)],
    ['two parts', 'Bearer a.b'],
    ['Basic', 'Basic dTpw'],
    ['none', undefined],
  ] as const) {
    t.equal(expiredToken(auth, NOW), undefined, what);
  }
});

t.test('UploadClock: bounded, the oldest goes first', async (t) => {
  const clock = new UploadClock(2);
  clock.started('a', 0);
  clock.started('b', 10);
  clock.started('c', 20);
  t.equal(clock.size, 2);
  t.equal(clock.elapsedMs('a', 100), undefined, 'the oldest was dropped');
  t.equal(clock.elapsedMs('c', 100), 80);
  clock.ended('c');
  t.equal(clock.elapsedMs('c', 100), undefined);
});

t.test('explainAnswer: a plain answer explains nothing; an upload is timed from its start to its end', async (t) => {
  const uploads = new UploadClock();
  const asked = (method: string, url: string, extra: Partial<Asked> = {}): Asked => ({ method, url, authorization: undefined, wallStart: NOW, bodyEndedAt: undefined, ...extra });
  t.equal(explainAnswer(asked('GET', '/v2/r/manifests/1'), 200, [], undefined, uploads, 0), undefined);
  t.equal(explainAnswer(asked('GET', '/service/token'), 502, [], undefined, uploads, 0), undefined, 'outside /v2/');
  t.equal(explainAnswer(asked('POST', '/v2/r/blobs/uploads/'), 202, ['Docker-Upload-UUID', 'u'], 'u', uploads, 1000), undefined);
  t.equal(uploads.elapsedMs('u', 4000), 3000, 'started at the POST');
  const put = explainAnswer(asked('PUT', '/v2/r/blobs/uploads/u?digest=sha256:1', { bodyEndedAt: 4000 }), 201, [], undefined, uploads, 4500);
  t.same(put, { finishMs: 500 });
  t.equal(uploads.size, 0, 'ended at its PUT');
  t.same(explainAnswer(asked('PUT', '/v2/r/blobs/uploads/v?digest=sha256:1', { bodyEndedAt: 0 }), 502, ['Server', 'lb'], undefined, uploads, 1), { anotherHop: { server: 'lb' } }, 'a hop\'s 502 is no finish time');
  t.same(explainAnswer(asked('DELETE', '/v2/r/blobs/uploads/w'), 204, [], undefined, uploads, 1), undefined);
});
