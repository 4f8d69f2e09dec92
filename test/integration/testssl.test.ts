import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { makeTestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

// berth's default TLS configuration as testssl.sh (Debian) sees it: protocols, cipher
// categories, forward secrecy, the known vulnerabilities and session resumption. Scoped
// to those checks so that it runs in well under a minute.

const have = spawnSync('sh', ['-c', 'command -v testssl']).status === 0;
const skip = have ? false : process.env.CI ? false : 'testssl is not installed (apt-get install testssl.sh); CI installs it';

interface Finding {
  readonly id: string;
  readonly severity: string;
  readonly finding: string;
}

const VULNERABILITIES = ['heartbleed', 'CCS', 'ticketbleed', 'ROBOT', 'secure_renego', 'secure_client_renego', 'CRIME_TLS', 'BREACH', 'POODLE_SSL', 'fallback_SCSV', 'SWEET32', 'FREAK', 'DROWN', 'LOGJAM', 'BEAST', 'LUCKY13', 'RC4'];

t.test('testssl.sh finds no weak protocol, no weak cipher, no known vulnerability, and resumption working', { skip, timeout: 240_000 }, async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const pki = await makeTestPki();
  // A leaf valid for 90 days, so that testssl's expiry warning (under 30 days) stays quiet.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-testssl-'));
  const leaf = await pki.issue({ notAfter: new Date(Date.now() + 90 * 86_400_000) });
  fs.writeFileSync(path.join(dir, 'tls.crt'), leaf.cert);
  fs.writeFileSync(path.join(dir, 'tls.key'), leaf.key);
  const berth = await startCli(['--workers', '2', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', path.join(dir, 'tls.crt'), '--key', path.join(dir, 'tls.key')]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const json = path.join(dir, 'out.json');
  // -p protocols, -e every cipher, -f forward secrecy, -U vulnerabilities, -S server defaults (resumption).
  const args = ['--quiet', '--color', '0', '--warnings', 'off', '--add-ca', pki.caFile, '--jsonfile', json, '-p', '-e', '-f', '-U', '-S', '--ip', 'one', `localhost:${berth.port}`];
  const testssl = (argv: string[]): Promise<void> => new Promise((resolve) => execFile('testssl', argv, { maxBuffer: 16 << 20, timeout: 200_000 }, () => resolve()));
  await testssl(args);
  const findings = JSON.parse(fs.readFileSync(json, 'utf8')) as Finding[];
  const get = (id: string): Finding | undefined => findings.find((f) => f.id === id);
  // testssl reports "check failed because of connect problem" when one of its own openssl
  // runs fails to connect (seen in CI under a parallel load, twice in a row once); that is no
  // finding about berth, so the resumption check alone is run again, up to three times.
  for (let attempt = 1; attempt <= 3 && /connect problem/.test(get('sessionresumption_ticket')?.finding ?? ''); attempt++) {
    t.comment(`testssl: ${get('sessionresumption_ticket')!.finding}; re-running the resumption check (${attempt} of 3)`);
    await new Promise((r) => setTimeout(r, 2000));
    const again = json.replace(/\.json$/, `-again${attempt}.json`);
    await testssl([...args.slice(0, args.indexOf('--jsonfile')), '--jsonfile', again, '-S', '--ip', 'one', args.at(-1)!]);
    const retried = (JSON.parse(fs.readFileSync(again, 'utf8')) as Finding[]).find((f) => f.id === 'sessionresumption_ticket');
    if (retried) findings.splice(findings.indexOf(get('sessionresumption_ticket')!), 1, retried);
  }

  for (const old of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) t.match(get(old), { finding: /^not offered/ }, `${old} not offered`);
  t.match(get('TLS1_2'), { finding: /^offered/ });
  t.match(get('TLS1_3'), { finding: /^offered/ });
  // Each accepted cipher, as "xc02b ECDHE-ECDSA-AES128-GCM-SHA256 ECDH 253 AESGCM 128 ...".
  const ciphers = findings.filter((f) => f.id.startsWith('cipher_x'));
  t.ok(ciphers.length >= 3, `${ciphers.length} ciphers accepted`);
  for (const c of ciphers) {
    const [, , kx, , enc] = c.finding.trim().split(/\s+/);
    t.ok(kx === 'ECDH' || kx === 'DH', `${c.finding.trim().split(/\s+/)[1]}: forward secrecy (${kx})`);
    t.ok(enc === 'AESGCM' || enc === 'ChaCha20' || enc === 'AESCCM', `${c.finding.trim().split(/\s+/)[1]}: AEAD, no CBC (${enc})`);
  }
  t.match(get('PFS'), { severity: 'OK', finding: /^offered/ });
  for (const id of VULNERABILITIES) t.equal(get(id)?.severity, 'OK', `${id}: ${get(id)?.finding}`);
  t.match(get('sessionresumption_ticket'), { finding: /^supported/ }, 'session resumption with tickets works');
  t.match(get('cert_chain_of_trust'), { severity: 'OK' }, 'the chain verifies against the test CA');
  // The test CA publishes no CRL or OCSP responder; that is the certificate's, not berth's.
  const serious = findings.filter((f) => (f.severity === 'HIGH' || f.severity === 'CRITICAL') && f.id !== 'cert_revocation');
  t.same(serious, [], 'nothing else high or critical');
  t.equal(await stopCli(berth.child), 0);
});
