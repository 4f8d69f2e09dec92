import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, withoutCredentials } from '../../../src/observe/logger.js';

t.test('credential headers are replaced, whatever their case, in objects and raw lists', async (t) => {
  t.same(withoutCredentials({ authorization: 'Bearer x', Cookie: 'a=b', 'proxy-authorization': 'Basic y', 'set-cookie': ['s'], accept: '*/*' }), {
    authorization: '[redacted]',
    Cookie: '[redacted]',
    'proxy-authorization': '[redacted]',
    'set-cookie': '[redacted]',
    accept: '*/*',
  });
  t.same(withoutCredentials(['Host', 'r', 'Authorization', 'Bearer x', 'Accept', 'authorization']), ['Host', 'r', 'Authorization', '[redacted]', 'Accept', 'authorization']);
  t.equal(withoutCredentials('text'), 'text');
});

t.test('a log line never carries a credential passed as headers or req.headers', async (t) => {
  let out = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void ((out += chunk.toString()), done()) });
  const logger = createLogger({ level: 'info', format: 'json' }, sink);
  logger.info({ headers: { authorization: 'Bearer secret-1' } }, 'one');
  logger.info({ req: { method: 'GET', headers: { cookie: 'session=secret-2' } } }, 'two');
  logger.info({ path: '/v2/', status: 200 }, 'request');
  await new Promise((resolve) => setImmediate(resolve));
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 3);
  t.notMatch(out, /secret-/, 'no credential in the output');
  t.same(lines[0]!.headers, { authorization: '[redacted]' });
  t.same(lines[1]!.req, { method: 'GET', headers: { cookie: '[redacted]' } });
  t.equal(lines[2]!.status, 200, 'other lines as given');
});
