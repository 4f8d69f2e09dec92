import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { tryRenegotiation } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

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
