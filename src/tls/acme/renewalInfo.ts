import type crypto from 'node:crypto';
import https from 'node:https';

/**
 * ACME Renewal Information (RFC 9773): the CA says when it wants a certificate renewed
 * (a window, earlier than usual when it must revoke), at `renewalInfo` in its directory.
 */

/** The certificate's ARI identifier: base64url(authority key identifier) "." base64url(serial, as DER INTEGER content). */
export function certId(leaf: crypto.X509Certificate): string | undefined {
  const keyId = authorityKeyId(Buffer.from(leaf.raw));
  if (keyId === undefined) return undefined;
  let serial = Buffer.from(leaf.serialNumber.length % 2 ? `0${leaf.serialNumber}` : leaf.serialNumber, 'hex');
  if (serial.length > 0 && serial[0]! >= 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${keyId.toString('base64url')}.${serial.toString('base64url')}`;
}

/** The keyIdentifier of the authorityKeyIdentifier extension (OID 2.5.29.35) in a certificate's DER, if there is one. */
function authorityKeyId(der: Buffer): Buffer | undefined {
  const oid = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x23]);
  let at = der.indexOf(oid);
  if (at < 0) return undefined;
  at += oid.length;
  if (der[at] === 0x01) at += 3; // critical BOOLEAN
  const octets = readTlv(der, at, 0x04);
  const sequence = octets && readTlv(der, octets.start, 0x30);
  const keyId = sequence && readTlv(der, sequence.start, 0x80);
  return keyId ? der.subarray(keyId.start, keyId.end) : undefined;
}

/** A DER element of `tag` at `at`: where its content starts and ends. */
function readTlv(der: Buffer, at: number, tag: number): { start: number; end: number } | undefined {
  if (der[at] !== tag || at + 2 > der.length) return undefined;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 3 || start + bytes > der.length) return undefined;
    length = der.readUIntBE(start, bytes);
    start += bytes;
  }
  return start + length <= der.length ? { start, end: start + length } : undefined;
}

export interface RenewalWindow {
  readonly start: Date;
  readonly end: Date;
  /** When to ask again (the CA's Retry-After, held between an hour and a day), ms. */
  readonly askAgainMs: number;
  readonly explanation: string | undefined;
}

const HOUR = 3_600_000;

/**
 * The CA's suggested renewal window for `leaf`, or undefined when the CA offers no renewal
 * information (no `renewalInfo` in its directory) or does not know the certificate.
 */
export async function renewalWindow(directory: URL, agent: https.Agent, leaf: crypto.X509Certificate): Promise<RenewalWindow | undefined> {
  const id = certId(leaf);
  if (id === undefined) return undefined;
  const dir = (await getJson(directory, agent)).body as { renewalInfo?: unknown };
  if (typeof dir.renewalInfo !== 'string') return undefined;
  const answer = await getJson(new URL(`${dir.renewalInfo.replace(/\/$/, '')}/${id}`), agent);
  const window = (answer.body as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown }).suggestedWindow;
  const start = new Date(String(window?.start));
  const end = new Date(String(window?.end));
  if (answer.status !== 200 || Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end < start) return undefined;
  const retryAfter = Number(answer.retryAfter) * 1000;
  const explanation = (answer.body as { explanationURL?: unknown }).explanationURL;
  return {
    start,
    end,
    askAgainMs: Math.min(24 * HOUR, Math.max(HOUR, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 6 * HOUR)),
    explanation: typeof explanation === 'string' ? explanation : undefined,
  };
}

function getJson(url: URL, agent: https.Agent): Promise<{ status: number; body: unknown; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent, timeout: 15_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (text.length > 65_536) req.destroy(new Error('answer too large'));
      });
      res.on('end', () => {
        let body: unknown = {};
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: treated as no information */
        }
        resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 15 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}
