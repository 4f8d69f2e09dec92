import t from 'tap';
import { ERRORS, ProxyError, classify, isRegistryPath } from '../../../src/proxy/errors.js';
import { ConnectTimeout, UpstreamClosed } from '../../../src/proxy/upstream/connection.js';
import { MalformedAnswer } from '../../../src/proxy/upstream/responseHead.js';

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`connect ${code} 10.0.0.5:5000`), { code });

t.test("the transport's own errors map to one catalogued error each, with their detail", async (t) => {
  const cases: [Error, string][] = [
    [new UpstreamClosed('the registry closed the connection before answering'), 'upstream_reset'],
    [new MalformedAnswer('Content-Length more than once'), 'upstream_bad_response'],
    [new ConnectTimeout(2000), 'upstream_connect_timeout'],
  ];
  for (const [input, kind] of cases) {
    const error = classify(input);
    t.equal(error.kind, kind, `${input.name}: ${input.message} → ${kind}`);
    t.equal(error.detail, input.message, 'the detail logged says what happened');
    t.equal(error.cause, input);
  }
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
