import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { NAME, connect, issued, setupAcme } from '../helpers/acme.js';
import { stopCli, type RunningCli } from '../helpers/cli.js';
import { pebbleMissing } from '../helpers/pebble.js';
import { onFreePort } from '../helpers/ports.js';
import { makeTestPki } from '../helpers/tls.js';
import { until } from '../helpers/wait.js';

// ACME over time, against Pebble: a renewal while an upload streams, and berths sharing tls.dir.

const skip = pebbleMissing() ?? false;

t.test('renewal at a third of the lifetime left, during a long upload: the upload finishes, the next connection gets the new certificate', { skip }, async (t) => {
  // 21 s certificates: renewed after 13-14 s.
  const s = await setupAcme(t, { validitySeconds: 21 });
  const berth = await s.berth();
  const first = await issued(berth);
  const root = await s.pebble.root();
  t.equal((await connect(s.tlsPort, root)).serial, first.serial);
  // An upload of 8 MiB sent over about 18 s, on a connection opened before the renewal.
  const body = crypto.randomBytes(8 * 1024 * 1024);
  const digest = `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`;
  const answer = new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.tlsPort, servername: NAME, ca: root }, () => {
      socket.write(`PUT /v2/lib/blobs/uploads/u1?digest=${digest} HTTP/1.1\r\nHost: ${NAME}\r\nContent-Length: ${body.length}\r\n\r\n`);
      let sent = 0;
      const piece = body.length / 180;
      const timer = setInterval(() => {
        socket.write(body.subarray(sent, sent + piece));
        sent += piece;
        if (sent >= body.length) clearInterval(timer);
      }, 100);
      let reply = '';
      socket.on('data', (d: Buffer) => {
        reply += d.toString();
        if (reply.includes('\r\n\r\n')) resolve(reply);
      });
      socket.on('close', () => reject(new Error(`closed before an answer (${sent} of ${body.length} bytes sent)`)));
    });
    socket.on('error', reject);
  });
  const renewed = await berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service' && l.serial !== first.serial);
  t.ok(await until(async () => (await connect(s.tlsPort, root)).serial === renewed.serial, 3000), 'the next connection gets the new certificate');
  const reply = await answer;
  t.match(reply, /^HTTP\/1\.1 201 /, 'the upload that spanned the renewal finished');
  t.match(reply, new RegExp(`docker-content-digest: ${digest}`, 'i'), 'with every byte');
  t.equal(await stopCli(berth.child), 0);
});

t.test('two berths sharing tls.dir, started together: one order; the one the CA does not reach answers through the shared challenges; both serve the certificate', { skip }, async (t) => {
  const s = await setupAcme(t);
  // Only the first listens where Pebble validates; whichever takes the order lock orders.
  const [a, b] = await Promise.all([s.berth({ workers: 1 }), onFreePort((port) => s.berth({ workers: 1, port }).then((running) => ({ running, port })))]);
  const inService = (berth: RunningCli): Promise<Record<string, unknown>> => berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service' || l.msg === 'ACME certificate issued to another berth sharing tls.dir: in service');
  const [first, second] = await Promise.all([inService(a), inService(b.running)]);
  t.equal(first.serial, second.serial, 'the same certificate in both');
  t.same([first.msg, second.msg].sort(), ['ACME certificate issued and in service', 'ACME certificate issued to another berth sharing tls.dir: in service'], 'one issued it, the other took it from tls.dir');
  t.equal(s.pebble.orders(), 1, 'one order reached the CA');
  const root = await s.pebble.root();
  t.equal((await connect(s.tlsPort, root)).serial, first.serial);
  t.equal((await connect(b.port, root)).serial, first.serial);
  t.equal(await stopCli(b.running.child), 0);

  // A third berth on the volume orders a certificate of its own (its first name differs) while
  // the CA can reach only the first berth, which orders nothing: it answers from tls.dir.
  const c = await onFreePort((port) => s.berth({ workers: 1, port, names: ['second.berth.test', NAME] }).then((running) => ({ running, port })));
  const own = await issued(c.running);
  // A CA may reuse the account's earlier validation of the shared name (Pebble does so at random,
  // about once in a hundred orders even with PEBBLE_AUTHZREUSE=0): then that name needs no challenge.
  const validated = c.running.lines.filter((l) => l.msg === 'ACME challenge validated').map((l) => l.name);
  const reused = c.running.lines.filter((l) => l.msg === 'ACME authorization still valid at the CA: no challenge needed').map((l) => l.name);
  t.ok(validated.includes('second.berth.test'), 'the new name validated, at the first berth');
  t.same([...validated, ...reused].sort(), ['registry.berth.test', 'second.berth.test'], 'each name validated or still valid at the CA, once');
  t.notOk(a.lines.some((l) => l.msg === 'ACME order placed' && l.time! > first.time!), 'which ordered nothing itself');
  t.equal((await connect(c.port, root, 'second.berth.test')).serial, own.serial, 'the third serves its own certificate');
  t.equal(await stopCli(a.child), 0);
  t.equal(await stopCli(c.running.child), 0);
});

t.test("the CA's renewal information (RFC 9773) asks for an early renewal: berth renews at once, then follows the usual schedule", { skip }, async (t) => {
  const s = await setupAcme(t);
  // A stand-in for the renewalInfo endpoint only: Pebble's directory, with renewalInfo added.
  const pki = await makeTestPki(['127.0.0.1']);
  const asked: string[] = [];
  const pebbleCa = fs.readFileSync(s.pebble.caFile, 'utf8');
  const standIn = https.createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
    if (req.url === '/dir') {
      https.get(s.pebble.directory, { ca: pebbleCa }, (up) => {
        let body = '';
        up.on('data', (d: Buffer) => (body += d.toString()));
        up.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...JSON.parse(body), renewalInfo: `https://127.0.0.1:${port}/renewalInfo` })));
      });
      return;
    }
    const id = /^\/renewalInfo\/(.+)$/.exec(req.url ?? '')?.[1];
    if (!id) return void res.writeHead(404).end();
    asked.push(id);
    // The first certificate: "renew now" (a window that has begun); any later one: in a month.
    const now = Date.now();
    const [start, end] = id === asked[0] ? [now - 7_200_000, now - 3_600_000] : [now + 30 * 86_400_000, now + 31 * 86_400_000];
    res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '21600' }).end(JSON.stringify({ suggestedWindow: { start: new Date(start).toISOString(), end: new Date(end).toISOString() }, explanationURL: 'https://ca.example/incident' }));
  });
  await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void standIn.close());
  const port = (standIn.address() as { port: number }).port;
  const ca = path.join(s.dir, 'cas.pem');
  fs.writeFileSync(ca, `${pebbleCa.trim()}\n${pki.ca.trim()}\n`);

  const berth = await s.berth({ workers: 1, directory: `https://127.0.0.1:${port}/dir`, ca });
  const first = await issued(berth);
  const early = await berth.waitForLine((l) => l.msg === "the CA's renewal information (ARI) asks for an earlier renewal");
  t.match(early, { serial: first.serial, explanation: 'https://ca.example/incident' }, 'said, with the CA\'s explanation');
  const second = await berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service' && l.serial !== first.serial);
  t.ok(second, 'renewed at once');
  t.ok(Date.parse(String(second.renewAt)) - Date.now() > 5_000, 'the new one renews on the usual schedule (the CA asks for nothing earlier)');

  // The id berth asked about for the certificate in service, as RFC 9773 builds it, from openssl's reading of it.
  const root = await s.pebble.root();
  const der = await new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.tlsPort, servername: NAME, ca: root }, () => {
      resolve(socket.getPeerCertificate().raw);
      socket.destroy();
    });
    socket.on('error', reject);
  });
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
  const text = spawnSync('openssl', ['x509', '-noout', '-serial', '-ext', 'authorityKeyIdentifier'], { input: pem }).stdout.toString();
  const keyId = Buffer.from(/([0-9A-F]{2}(?::[0-9A-F]{2})+)/.exec(text.split('Authority Key Identifier')[1] ?? '')?.[1]?.replace(/:/g, '') ?? '', 'hex');
  let serial = Buffer.from(/serial=([0-9A-F]+)/.exec(text)?.[1] ?? '', 'hex');
  if (serial[0]! >= 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  t.ok(keyId.length > 0, 'openssl reads the authority key identifier');
  t.ok(asked.includes(`${keyId.toString('base64url')}.${serial.toString('base64url')}`), 'the certificate id berth asks about is base64url(authority key id) "." base64url(serial)');
  t.equal(await stopCli(berth.child), 0);
});
