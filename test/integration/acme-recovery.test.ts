import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { pebbleMissing, startPebble } from '../helpers/pebble.js';
import { freePort, onFreePort } from '../helpers/ports.js';
import { startUpstream } from '../helpers/upstream.js';

// The CA down when berth starts: the order fails, berth waits (backoff, not a loop) with
// /readyz saying why, and gets its certificate once the CA is back. A file of its own: it
// waits out the first backoff (about a minute), so it runs with the slow tests: with
// TEST_SLOW=1, or in CI unless TEST_SLOW=0 (.ci/run runs it on one Node version of the two).

const NAME = 'registry.berth.test';
const slow = process.env.TEST_SLOW === '1' || (Boolean(process.env.CI) && process.env.TEST_SLOW !== '0');

t.test('the CA down at start: a clear failure, a minute of backoff, then the certificate once the CA is back', { skip: slow ? (pebbleMissing() ?? false) : 'slow (a minute of backoff): set TEST_SLOW=1 (on in CI)', timeout: 180_000 }, async (t) => {
  const upstream = await startUpstream(t, (_req, res) => res.end('{}'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-acme-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await onFreePort(async (tlsPort) => {
    const pebble = await startPebble(t, { tlsPort, httpPort: await freePort() });
    await pebble.stop();
    const args = ['--workers', '2', '--listen', `127.0.0.1:${tlsPort}`, '--upstream', upstream.url, '--public-origin', `https://${NAME}`, '--cert-dir', dir, '--acme-email', 'ops@berth.test', '--acme-directory', pebble.directory];
    const berth = await startCli(args, { env: { BERTH_ACME_CA: pebble.caFile } });
    t.teardown(() => void berth.child.kill('SIGKILL'));
    const failed = await berth.waitForLine((l) => String(l.msg).startsWith('ACME order failed'));
    t.match(failed.msg, /cannot reach the ACME directory .* \(ECONNREFUSED\)/, 'said in those words');
    const ready = (await (await fetch(`http://127.0.0.1:${berth.adminPort}/readyz`)).json()) as { checks: { certificate: { ok: boolean; detail: string } } };
    t.match(ready.checks.certificate, { ok: false, detail: /^waiting for the ACME certificate: cannot reach/ }, '/readyz says why');

    await pebble.start();
    const issued = await berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service');
    const waited = (issued.time as number) - (failed.time as number);
    t.ok(waited >= 50_000, `the retry came after the backoff (${Math.round(waited / 1000)} s), not in a loop`);
    t.equal(berth.lines.filter((l) => String(l.msg).startsWith('ACME order failed')).length, 1, 'one failure in all');
    const root = await pebble.root();
    const serial = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: NAME, ca: root }, () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.destroy();
      });
      socket.on('error', reject);
    });
    t.equal(serial, issued.serial, 'served, verified against the CA');
    const after = (await (await fetch(`http://127.0.0.1:${berth.adminPort}/readyz`)).json()) as { checks: { certificate: { ok: boolean } } };
    t.equal(after.checks.certificate.ok, true, '/readyz: the certificate check passes');
    t.equal(await stopCli(berth.child), 0);
  });
});
