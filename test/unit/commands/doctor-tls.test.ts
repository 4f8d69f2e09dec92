import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import selfsigned from 'selfsigned';
import t from 'tap';
import { tlsFindings } from '../../../src/commands/doctor/tls.js';
import { buildConfig, fromEnv } from '../../../src/config/validate.js';
import { AcmeStore } from '../../../src/tls/acme/store.js';

// doctor's chain checks on a private PKI with an intermediate: root → intermediate → leaf.

const DAY = 86_400_000;
const ec = { keyType: 'ec' as const, curve: 'P-256' as const, algorithm: 'sha256' };
const ca = [
  { name: 'basicConstraints' as const, cA: true, critical: true },
  { name: 'keyUsage' as const, keyCertSign: true, cRLSign: true, critical: true },
];

async function pki(leafDays = 90): Promise<{ root: string; intermediate: string; leaf: string; key: string }> {
  const now = Date.now();
  const dates = { notBeforeDate: new Date(now - 60_000), notAfterDate: new Date(now + 90 * DAY) };
  const root = await selfsigned.generate([{ name: 'commonName', value: 'doctor test root' }], { ...ec, ...dates, extensions: ca });
  const intermediate = await selfsigned.generate([{ name: 'commonName', value: 'doctor test intermediate' }], { ...ec, ...dates, ca: { key: root.private, cert: root.cert }, extensions: ca });
  const leaf = await selfsigned.generate([{ name: 'commonName', value: 'registry.example.com' }], {
    ...ec,
    notBeforeDate: dates.notBeforeDate,
    notAfterDate: new Date(now + leafDays * DAY),
    ca: { key: intermediate.private, cert: intermediate.cert },
    extensions: [{ name: 'basicConstraints' as const, cA: false }, { name: 'subjectAltName' as const, altNames: [{ type: 2 as const, value: 'registry.example.com' }] }],
  });
  return { root: root.cert, intermediate: intermediate.cert, leaf: leaf.cert, key: leaf.private };
}

function findings(files: { cert: string; key: string; ca: string }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-doctor-tls-'));
  const write = (name: string, text: string): string => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
  const config = buildConfig([fromEnv({ BERTH_TLS_CERT: write('tls.crt', files.cert), BERTH_TLS_KEY: write('tls.key', files.key), BERTH_PUBLIC_ORIGIN: 'https://registry.example.com' }, [])]);
  try {
    return tlsFindings(config, write('ca.crt', files.ca));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A PEM file of certificates, one after the other. */
const pem = (...certs: string[]): string => certs.map((c) => c.trim()).join('\n') + '\n';
const chain = (f: ReturnType<typeof findings>) => f.find((x) => x.id === 'tls-chain')!;

t.test('leaf and intermediate, in order: complete up to the given CA', async (t) => {
  const p = await pki();
  const c = chain(findings({ cert: pem(p.leaf, p.intermediate), key: p.key, ca: p.root }));
  t.equal(c.level, 'ok', c.detail);
  t.match(c.detail, 'complete: 2 certificates, up to CN=doctor test root');
});

t.test('the intermediate missing: a problem, with the fix', async (t) => {
  const p = await pki();
  const c = chain(findings({ cert: p.leaf, key: p.key, ca: p.root }));
  t.equal(c.level, 'problem');
  t.match(c.detail, 'issued by CN=doctor test intermediate, which is not in');
  t.match(c.cause, 'an intermediate certificate is missing');
  t.match(c.fix, 'append the intermediate(s)');
});

t.test('out of order (intermediate first): a problem naming the certificate', async (t) => {
  const p = await pki();
  const c = chain(findings({ cert: pem(p.intermediate, p.leaf), key: p.key, ca: p.root }));
  // The key belongs to the leaf, not to the first certificate: the files finding says so first.
  const files = findings({ cert: pem(p.intermediate, p.leaf), key: p.key, ca: p.root }).find((x) => x.id === 'tls-files')!;
  t.equal(files.level, 'problem', 'the key does not match the first certificate');
  t.notOk(c, 'no chain verdict on files that do not load');
  const mixed = chain(findings({ cert: pem(p.leaf, p.root, p.intermediate), key: p.key, ca: p.root }));
  t.equal(mixed.level, 'problem');
  t.match(mixed.detail, 'certificate 1 in');
  t.match(mixed.fix, 'write the leaf first, then each intermediate in order');
});

t.test('expiry: ok with 90 days left, a warning under 14, with the fix', async (t) => {
  const expiry = (f: ReturnType<typeof findings>) => f.find((x) => x.id === 'tls-expiry')!;
  const long = await pki(90);
  t.equal(expiry(findings({ cert: pem(long.leaf, long.intermediate), key: long.key, ca: long.root })).level, 'ok');
  const soon = await pki(5);
  const e = expiry(findings({ cert: pem(soon.leaf, soon.intermediate), key: soon.key, ca: soon.root }));
  t.equal(e.level, 'warning');
  t.match(e.detail, /\((4|5) days\)/);
  t.match(e.fix, 'renew it now');
});

t.test('ACME: where the certificate comes from, what is stored and when it renews; none stored yet is a warning saying what the CA needs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-doctor-acme-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = buildConfig([fromEnv({ BERTH_TLS_DIR: dir, BERTH_PUBLIC_ORIGIN: 'https://registry.example.com', BERTH_ACME_EMAIL: 'ops@example.com' }, [])]);
  const none = tlsFindings(config, undefined);
  t.match(none, [{ id: 'tls-acme', level: 'warning', detail: /^certificates from ACME \(https:\/\/acme-v02\.api\.letsencrypt\.org\/directory\) for registry\.example\.com by tls-alpn-01; none stored in .* yet: berth orders one when it starts/, fix: /port 443/ }]);
  t.equal(none.length, 1, 'nothing else to check yet');

  const p = await pki();
  new AcmeStore(dir, config.acme!.directory).saveCertificate(['registry.example.com'], `${p.leaf.trim()}\n${p.intermediate.trim()}\n`, p.key);
  fs.writeFileSync(path.join(dir, 'root.crt'), p.root);
  const stored = tlsFindings(config, path.join(dir, 'root.crt'));
  t.match(stored[0], { id: 'tls-acme', level: 'ok', detail: /; stored: serial [0-9A-F]+, valid until .*, renewed from about \d{4}-/ });
  t.ok(stored.some((f) => f.id === 'tls-chain' && f.level === 'ok'), 'then the stored chain is checked as files are');
  t.ok(stored.some((f) => f.id === 'tls-names' && f.level === 'ok'), 'and the names');
});
