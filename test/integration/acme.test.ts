import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { NAME, connect, issued, readyz, setupAcme } from '../helpers/acme.js';
import { runCli, startCli, stopCli } from '../helpers/cli.js';
import { pebbleMissing } from '../helpers/pebble.js';
import { makeTestPki } from '../helpers/tls.js';

// Automatic certificates against a real ACME server: Debian's Pebble, with its DNS
// (pebble-challtestsrv) resolving every name to 127.0.0.1, validating on berth's own ports.

const skip = pebbleMissing() ?? false;

t.test('TLS-ALPN-01 with workers: auto: issued, served by every worker, verified against the CA; a restart serves the stored certificate and orders nothing', { skip }, async (t) => {
  const s = await setupAcme(t);
  const berth = await s.berth({ workers: 'auto' });
  const line = await issued(berth);
  t.match(line, { names: [NAME], serial: /^[0-9A-F]+$/ }, 'issued');
  t.ok(berth.lines.some((l) => l.msg === 'ACME challenge validated' && l.name === NAME && l.challenge === 'tls-alpn-01'), 'through a TLS-ALPN-01 challenge');
  const root = await s.pebble.root();
  // 16 connections: both workers serve it (the kernel puts all on one once in 32,768 runs).
  const served = await Promise.all(Array.from({ length: 16 }, () => connect(s.tlsPort, root)));
  t.same(new Set(served.map((c) => c.serial)), new Set([line.serial]), 'every connection gets the issued certificate, verified against the CA\'s root');
  t.same(new Set(served.map((c) => c.status)), new Set([200]), 'and is proxied');
  const ready = await readyz(berth);
  t.match(ready.body.checks.certificate, { ok: true, detail: /^valid until / }, '/readyz: the certificate check passes');
  const metrics = await (await fetch(`http://127.0.0.1:${berth.adminPort}/metrics`)).text();
  t.match(metrics, /^berth_acme_orders_total\{result="issued"\} 1$/m, 'metrics: one order issued');
  t.match(metrics, /^berth_acme_next_renewal_timestamp_seconds \d{10}$/m, 'and the next renewal');
  const stored = path.join(s.dir, 'acme', `127.0.0.1_${s.pebble.directory.split(':')[2]!.replace('/dir', '')}_dir`);
  t.equal(fs.statSync(path.join(stored, 'account.key')).mode & 0o777, 0o600, 'the account key is kept, mode 0600');
  t.equal(fs.statSync(path.join(stored, `${NAME}.key`)).mode & 0o777, 0o600, 'the certificate key too');
  t.match(fs.readFileSync(path.join(stored, `${NAME}.key`), 'utf8'), /BEGIN PRIVATE KEY/);
  t.equal(crypto.createPrivateKey(fs.readFileSync(path.join(stored, `${NAME}.key`))).asymmetricKeyDetails?.namedCurve, 'prime256v1', 'an ECDSA P-256 key');
  // berth check, with the same settings, against the running berth and the CA's root.
  fs.writeFileSync(path.join(s.dir, 'root.crt'), root);
  const { args, env } = s.settings({ workers: 'auto' });
  const check = await runCli(['check', ...args, '--admin-listen', `127.0.0.1:${berth.adminPort}`, '--ca', path.join(s.dir, 'root.crt')], { env });
  t.match(check.stdout, new RegExp(`ok\\s+tls-acme\\s+certificates from ACME \\(${s.pebble.directory.replace(/[.]/g, '\\.')}\\) for ${NAME.replace(/[.]/g, '\\.')} by tls-alpn-01; stored: serial ${line.serial}`), 'check: where the certificate comes from, and the one stored');
  t.match(check.stdout, /ok\s+tls-chain\s+complete/, 'its chain checked up to the CA\'s root');
  t.match(check.stdout, /ok\s+berth-ready\s+ready: the berth running as pid \d+, .*; ACME: next renewal \d{4}-\d\d-\d\dT/, 'and the running berth\'s next renewal');
  t.equal(check.code, 0, check.stdout);
  t.equal(await stopCli(berth.child), 0);

  // A restart serves the stored certificate: no order reaches the CA, which is up.
  const orders = s.pebble.orders();
  const again = await s.berth({ workers: 'auto' });
  t.match(await again.waitForLine((l) => l.msg === 'ACME certificate loaded from tls.dir'), { serial: line.serial }, 'the restart loads the stored certificate');
  t.equal((await connect(s.tlsPort, root)).serial, line.serial, 'and serves it at once');
  t.equal((await readyz(again)).body.checks.certificate.ok, true);
  await new Promise((r) => setTimeout(r, 1000));
  t.notOk(again.lines.some((l) => l.msg === 'ACME order placed' || String(l.msg).startsWith('ACME order failed')), 'no order was tried');
  t.equal(s.pebble.orders(), orders, 'and none reached the CA (counted at Pebble)');
  t.equal(await stopCli(again.child), 0);

  // Nor does it need the CA at all.
  await s.pebble.stop();
  const third = await s.berth({ workers: 'auto' });
  t.equal((await connect(s.tlsPort, root)).serial, line.serial, 'with the CA down, the stored certificate is served all the same');
  t.equal((await readyz(third)).body.checks.certificate.ok, true);
  t.equal(await stopCli(third.child), 0);
});

t.test('HTTP-01 with workers: auto: answered on the plain-HTTP listener, never redirected or forwarded', { skip }, async (t) => {
  const s = await setupAcme(t);
  const berth = await s.berth({ workers: 'auto', challenge: 'http-01' });
  const line = await issued(berth);
  t.ok(berth.lines.some((l) => l.msg === 'ACME challenge validated' && l.challenge === 'http-01'), 'through an HTTP-01 challenge');
  t.equal((await connect(s.tlsPort, await s.pebble.root())).serial, line.serial, 'served, verified against the CA');
  t.notOk(s.upstream.seen.some((r) => r.url.includes('acme-challenge')), 'no challenge request reached the upstream');
  const unknown = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: s.httpPort, path: '/.well-known/acme-challenge/unknown-token', headers: { host: NAME } }, (res) => resolve(res.statusCode!)).on('error', reject);
  });
  t.equal(unknown, 308, 'a token berth does not hold is redirected like any path');
  t.equal(await stopCli(berth.child), 0);
});

t.test('before the first certificate: handshakes fail, /readyz says what berth waits for; the CA unreachable is said in those words', { skip }, async (t) => {
  const s = await setupAcme(t);
  await s.pebble.stop();
  const berth = await s.berth();
  await berth.waitForLine((l) => l.msg === 'no ACME certificate yet: ordering one; handshakes for these names fail until it is issued');
  const failed = await berth.waitForLine((l) => l.msg === `ACME order failed: cannot reach the ACME directory ${s.pebble.directory} (ECONNREFUSED): check acme.directory and that berth can reach it`);
  t.match(failed, { level: 50, attempt: 1, keeping: 'none' }, 'the failure, at error');
  const retry = Number(/^(\d+)s$/.exec(String(failed.retryIn))?.[1]);
  t.ok(retry >= 54 && retry <= 66, `retried in about a minute, not in a tight loop (${failed.retryIn})`);
  const ready = await readyz(berth);
  t.equal(ready.status, 503, '/readyz: 503');
  t.match(ready.body.checks.certificate, { ok: false, detail: /^waiting for the ACME certificate: cannot reach the ACME directory/ }, 'saying what berth waits for, and why');
  t.equal(ready.body.serving.certificate, null);
  const handshake = await connect(s.tlsPort, await makeAnyCa()).then(
    () => 'connected',
    (err: NodeJS.ErrnoException) => err.code ?? err.message,
  );
  t.notOk(handshake === 'connected', `a handshake for the name fails: no certificate is served (${handshake})`);
  t.notMatch(handshake, /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/, 'rather than serving something untrusted');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(berth.lines.filter((l) => String(l.msg).startsWith('ACME order failed')).length, 1, 'no second attempt within seconds');
  t.equal(await stopCli(berth.child), 0);

  // A restart loop must not order faster than the backoff: the failure is kept in tls.dir.
  const again = await s.berth();
  const waiting = await again.waitForLine((l) => l.msg === 'no ACME certificate yet: ordering one; handshakes for these names fail until it is issued');
  t.match(waiting, { failedBefore: 1 }, 'the restart knows of the failed order');
  t.ok(Date.parse(String(waiting.nextAttempt)) - Date.now() > 40_000, `and waits out its backoff (next attempt ${String(waiting.nextAttempt)})`);
  t.match((await readyz(again)).body.checks.certificate.detail, /the last 1 order\(s\) failed, the next attempt is at /);
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(again.lines.some((l) => String(l.msg).startsWith('ACME order')), 'and orders nothing meanwhile');
  t.equal(await stopCli(again.child), 0);
});

t.test('a name the CA cannot validate: a clear error naming it and the port, one attempt, no retry storm', { skip }, async (t) => {
  const s = await setupAcme(t);
  // The DNS sends the CA for this name to an address where berth does not listen.
  await s.pebble.resolve('elsewhere.berth.test', '127.0.0.2');
  const berth = await s.berth({ workers: 1, names: [NAME, 'elsewhere.berth.test'] });
  const failed = await berth.waitForLine((l) => String(l.msg).startsWith('ACME order failed'));
  t.match(failed.msg, /the CA could not connect to elsewhere\.berth\.test on port 443: port 443 must be reachable from the internet and lead to berth/, 'names the name, the port and what to fix');
  t.match(failed.problem, { type: /^urn:ietf:params:acme:error:/, detail: /127\.0\.0\.2/ }, 'with the CA\'s problem document');
  t.match((await readyz(berth)).body.checks.certificate.detail, /could not connect to elsewhere\.berth\.test/);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(s.pebble.orders(), 1, 'one order, not a storm');
  t.match(await (await fetch(`http://127.0.0.1:${berth.adminPort}/metrics`)).text(), /^berth_acme_orders_total\{result="failed"\} 1$/m, 'counted as failed');
  t.equal(await stopCli(berth.child), 0);
});



t.test('a CA that requires External Account Binding: refused without it, in those words; issued with acme.eab', { skip }, async (t) => {
  const hmacKey = crypto.randomBytes(32).toString('base64url');
  const s = await setupAcme(t, { eab: { 'berth-kid': hmacKey } });
  const without = await s.berth({ workers: 1 });
  t.match((await without.waitForLine((l) => String(l.msg).startsWith('ACME order failed'))).msg, /the CA requires External Account Binding: set acme\.eab\.kid and acme\.eab\.hmacKey/);
  t.equal(await stopCli(without.child), 0);
  fs.rmSync(path.join(s.dir, 'acme'), { recursive: true, force: true }); // the failure's record, so the next start orders at once
  const { args, env } = s.settings({ workers: 1 });
  const withEab = await startCli(args, { env: { ...env, BERTH_ACME_EAB_KID: 'berth-kid', BERTH_ACME_EAB_HMAC_KEY: hmacKey } });
  t.teardown(() => void withEab.child.kill('SIGKILL'));
  const line = await issued(withEab);
  t.equal((await connect(s.tlsPort, await s.pebble.root())).serial, line.serial, 'issued and served');
  t.equal(await stopCli(withEab.child), 0);
});

/** A CA no one uses: a client trusting only it refuses any certificate berth might serve. */
async function makeAnyCa(): Promise<string> {
  return (await makeTestPki()).ca;
}
