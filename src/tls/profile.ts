import { constants } from 'node:crypto';
import type tls from 'node:tls';

/**
 * Mozilla "intermediate" (ssl-config.mozilla.org, guideline 5.7), restricted to ECDHE key
 * exchange: TLS 1.2 and 1.3 only, forward secrecy and AEAD ciphers only. Node's default
 * "HIGH" list would still admit static-RSA and CBC suites on TLS 1.2.
 */
export const TLS_PROFILE: Readonly<tls.SecureContextOptions & { honorCipherOrder: boolean }> = Object.freeze({
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: [
    // TLS 1.3 suites (all three are AEAD with forward secrecy).
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    // TLS 1.2: ECDHE only, AES-GCM or ChaCha20-Poly1305.
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  ecdhCurve: 'X25519:P-256:P-384',
  // Mozilla intermediate lets the client pick: every suite on the list is strong, and
  // clients without AES hardware prefer ChaCha20.
  honorCipherOrder: false,
  // No client-initiated renegotiation on TLS 1.2 (TLS 1.3 has none): no registry client
  // needs it, and each one costs the server a full handshake. Node's own guard only cuts a
  // connection after three in ten minutes, which testssl.sh still rates a DoS threat;
  // nginx refuses them outright, as this does (the client gets a no_renegotiation alert).
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
});
