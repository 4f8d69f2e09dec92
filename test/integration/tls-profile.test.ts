import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, waitForLog, type TestBerth } from '../helpers/berth.js';
import { tryRenegotiation } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/wait.js';

/** Attempts a handshake with the given client settings; resolves with what was negotiated or the error code. */
function handshake(tb: TestBerth, options: tls.ConnectionOptions): Promise<{ ok: true; protocol: string; cipher: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port: tb.port, ca: tb.pki.ca, ...options }, () => {
      resolve({ ok: true, protocol: socket.getProtocol() ?? '', cipher: socket.getCipher().name });
      socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code ?? err.message }));
  });
}

t.test('Mozilla intermediate: TLS 1.2 and 1.3, ECDHE with AEAD only, X25519/P-256/P-384', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end());
  const tb = await startTestBerth(t, { upstream: up.url });

  const v13 = await handshake(tb, {});
  t.match(v13, { ok: true, protocol: 'TLSv1.3' }, 'TLS 1.3 by default');

  for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
    t.match(await handshake(tb, { maxVersion: 'TLSv1.2', ciphers: cipher }), { ok: true, protocol: 'TLSv1.2', cipher }, `TLS 1.2 ${cipher}`);
  }
  for (const cipher of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-CCM', 'AES128-GCM-SHA256', 'AES256-SHA256']) {
    t.match(await handshake(tb, { maxVersion: 'TLSv1.2', ciphers: cipher }), { ok: false }, `TLS 1.2 ${cipher} refused (CBC, CCM or no forward secrecy)`);
  }
  for (const version of ['TLSv1', 'TLSv1.1'] as const) {
    t.match(await handshake(tb, { minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }), { ok: false }, `${version} refused`);
  }
  for (const curve of ['X25519', 'P-256', 'P-384']) t.match(await handshake(tb, { ecdhCurve: curve }), { ok: true }, `${curve} accepted`);
  t.match(await handshake(tb, { ecdhCurve: 'P-521' }), { ok: false }, 'P-521 refused');
  t.match(await handshake(tb, { maxVersion: 'TLSv1.2', ecdhCurve: 'P-521' }), { ok: false }, 'P-521 refused on TLS 1.2');
});

t.test('client-initiated renegotiation is refused, and the listener keeps serving', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end());
  const tb = await startTestBerth(t, { upstream: up.url });
  t.equal(await tryRenegotiation(tb.port, tb.pki.ca), 'ERR_SSL_NO_RENEGOTIATION', 'the client is told no (no_renegotiation alert)');
  t.match(await handshake(tb, { maxVersion: 'TLSv1.2' }), { ok: true, protocol: 'TLSv1.2' }, 'a new TLS 1.2 connection still works');
});

t.test('failed handshakes show in the default logs, at warn, without flooding them', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end());
  const tb = await startTestBerth(t, { upstream: up.url });
  const failed = (l: Record<string, unknown>): boolean => l.msg === 'TLS handshake failed' || l.msg === 'TLS handshakes failed';
  /** Plain HTTP on the TLS port, as a client configured with http:// sends it. */
  const plainHttp = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = net.connect(tb.port, '127.0.0.1', () => socket.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n'));
      socket.on('data', () => undefined);
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });

  await plainHttp();
  const first = await waitForLog(tb, failed);
  t.match(first, { level: 40, msg: 'TLS handshake failed', code: 'ERR_SSL_HTTP_REQUEST', client: '127.0.0.1', reason: /^plain HTTP sent to the TLS port/ }, 'the first: at once, at warn, with its reason and client');
  // A TLS 1.2 client offering only a cipher berth does not serve.
  t.match(await handshake(tb, { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256' }), { ok: false });
  for (let i = 0; i < 20; i++) await plainHttp();
  const counted = async (): Promise<number> => Number(/ (\d+)$/m.exec(await tb.berth.registry.getSingleMetricAsString('berth_tls_handshake_failures_total'))?.[1]);
  t.ok(await until(async () => (await counted()) === 22), 'berth has seen all 22 failures');
  t.equal(tb.logs.filter(failed).length, 1, '21 more within the minute: summed, not one line each (the sum is logged at the end of the minute)');
  t.equal((await handshake(tb, {})).ok, true, 'and berth serves on');
});
