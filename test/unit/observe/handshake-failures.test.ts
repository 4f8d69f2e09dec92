import t from 'tap';
import { HandshakeFailures, handshakeReason } from '../../../src/observe/handshakeFailures.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('the first failure at once, the rest summed per interval by reason and client, then quiet until the next', async (t) => {
  const lines: [Record<string, unknown>, string][] = [];
  const failures = new HandshakeFailures({ warn: (obj: object, msg: string) => void lines.push([obj as Record<string, unknown>, msg]) } as never, 200);
  t.teardown(() => failures.close());
  const unknownCa = { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', message: 'tlsv1 alert unknown ca' };
  const http = { code: 'ERR_SSL_HTTP_REQUEST', message: 'http request' };

  failures.failed(unknownCa, '10.0.0.1');
  t.equal(lines.length, 1, 'the first: logged at once');
  t.match(lines[0], [{ code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', client: '10.0.0.1', reason: /^the client refused berth's certificate \(alert: unknown ca\)/ }, 'TLS handshake failed']);

  for (let i = 0; i < 30; i++) failures.failed(i % 3 === 0 ? http : unknownCa, i % 2 === 0 ? '10.0.0.1' : '10.0.0.2');
  t.equal(lines.length, 1, 'the next 30 within the interval: no line yet');
  await sleep(300);
  t.equal(lines.length, 2, 'one line at the end of the interval');
  t.match(lines[1], [
    { failures: 30, seconds: 0.2, reasons: { [handshakeReason(unknownCa)]: 20, [handshakeReason(http)]: 10 }, clients: { '10.0.0.1': 15, '10.0.0.2': 15 } },
    'TLS handshakes failed',
  ]);

  await sleep(300);
  t.equal(lines.length, 2, 'an interval without failures: nothing');
  failures.failed(http, '10.0.0.3');
  t.equal(lines.length, 3, 'after a quiet interval, the next failure at once again');
  t.match(lines[2], [{ client: '10.0.0.3', reason: /^plain HTTP sent to the TLS port/ }, 'TLS handshake failed']);
});

t.test('reasons in an operator\'s words', async (t) => {
  t.match(handshakeReason({ code: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', message: '' }), /refused berth's certificate \(alert: bad certificate\)/);
  t.match(handshakeReason({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', message: '' }), 'the client ended the handshake (alert: handshake failure)');
  t.match(handshakeReason({ code: 'ERR_TLS_HANDSHAKE_TIMEOUT', message: '' }), /timeouts\.handshake/);
  t.equal(handshakeReason({ code: undefined, message: 'something else' }), 'something else');
});
