import t from 'tap';
import { errors as undici } from 'undici';
import { ERRORS, ProxyError, classify, isRegistryPath } from '../../../src/proxy/errors.js';

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`connect ${code} 10.0.0.5:5000`), { code });

t.test("undici's errors (the transport's) map to one catalogued error each", async (t) => {
  const cases: [Error, string][] = [
    [new undici.SocketError('other side closed'), 'upstream_reset'],
    [new undici.SocketError('reset'), 'upstream_reset'],
    [new undici.SocketError('bad response'), 'upstream_bad_response'], // a 100 nobody asked for
    [new undici.SocketError('bad upgrade'), 'upstream_bad_response'], // a 101
    [new undici.HTTPParserError('Response does not match the HTTP/1.1 protocol (Expected HTTP/)'), 'upstream_bad_response'],
    [Object.assign(new undici.HTTPParserError('Invalid header value char'), { code: 'HPE_INVALID_HEADER_TOKEN' }), 'upstream_bad_response'],
    [new undici.HeadersOverflowError(), 'upstream_bad_response'],
    [new undici.ResponseContentLengthMismatchError(), 'upstream_bad_response'],
    [new undici.ConnectTimeoutError(), 'upstream_connect_timeout'],
    [new undici.HeadersTimeoutError(), 'upstream_timeout'],
    [new undici.BodyTimeoutError(), 'upstream_timeout'],
    [new undici.RequestAbortedError(), 'client_gone'],
    [new undici.ClientDestroyedError(), 'upstream_unreachable'],
    [Object.assign(new Error('The expression evaluated to a falsy value'), { code: 'ERR_ASSERTION' }), 'upstream_bad_response'],
  ];
  for (const [input, kind] of cases) t.equal(classify(input).kind, kind, `${input.name}: ${input.message} → ${kind}`);
});

t.test('transport errors map to one catalogued error each', async (t) => {
  const cases: [unknown, string, number][] = [
    [errno('ECONNREFUSED'), 'upstream_unreachable', 502],
    [errno('ENOTFOUND'), 'upstream_unreachable', 502],
    [errno('EHOSTUNREACH'), 'upstream_unreachable', 502],
    [errno('ECONNRESET'), 'upstream_reset', 502],
    [errno('EPIPE'), 'upstream_reset', 502],
    [errno('ETIMEDOUT'), 'upstream_connect_timeout', 504],
    [errno('EMFILE'), 'descriptors_exhausted', 503],
    [errno('ENFILE'), 'descriptors_exhausted', 503],
    [errno('HPE_INVALID_CONSTANT'), 'upstream_bad_response', 502],
    [errno('ERR_TLS_CERT_ALTNAME_INVALID'), 'upstream_tls', 502],
    [errno('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'upstream_tls', 502],
    [errno('CERT_HAS_EXPIRED'), 'upstream_tls', 502],
    [errno('ERR_SSL_WRONG_VERSION_NUMBER'), 'upstream_tls', 502],
    [new ProxyError('upstream_timeout'), 'upstream_timeout', 504],
    [new Error('surprise'), 'internal', 500],
    [undefined, 'internal', 500],
  ];
  for (const [input, kind, status] of cases) {
    const error = classify(input);
    t.equal(error.kind, kind, `${(input as Error | undefined)?.message ?? String(input)} → ${kind}`);
    t.equal(error.status, status);
    t.notMatch(error.publicMessage, /10\.0\.0\.5/, 'the public message names no internal address');
  }
});

t.test('every catalogued error has a registry code and a message that says it is berth', async (t) => {
  for (const [kind, entry] of Object.entries(ERRORS)) {
    t.match(entry.code, /^[A-Z_]+$/, kind);
    if (kind !== 'client_gone') t.match(entry.message, /^berth: /, kind);
  }
});

t.test('registry paths', async (t) => {
  for (const path of ['/v2', '/v2/', '/v2/a/b/manifests/latest', '/v2?x']) t.ok(isRegistryPath(path), path);
  for (const path of ['/', '/v2x', '/api/v2.0/ping', '/service/token', undefined]) t.notOk(isRegistryPath(path), String(path));
});
