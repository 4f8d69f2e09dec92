import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startCli, stopCli } from '../helpers/cli.js';
import { startUpstream } from '../helpers/upstream.js';

function get(host: string, port: number, ca: string, servername?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get({ host, port, path: '/v2/', ca, agent: false, servername, headers: { host: `${servername ?? 'localhost'}:${port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
      .on('error', reject);
  });
}


t.test('with no certificate configured, a development CA is made, kept and trusted by clients', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-dev-'));
  t.teardown(() => fs.rmSync(cwd, { recursive: true, force: true }));

  const first = await startCli(['--upstream', up.url, '--listen', '127.0.0.1:0'], { cwd });
  const caFile = path.join(cwd, 'certs', 'berth-dev-ca.crt');
  const ca = fs.readFileSync(caFile, 'utf8');
  t.equal((fs.statSync(path.join(cwd, 'certs', 'berth-dev-ca.key')).mode & 0o777), 0o600, 'the CA key is private');
  t.equal(await get('localhost', first.port, ca), 200, 'verified for localhost');
  t.equal(await get('127.0.0.1', first.port, ca), 200, 'verified for 127.0.0.1');
  const trust = first.lines.find((l) => /development certificate; trust its CA/.test(String(l.msg)))!;
  t.ok(trust, 'berth says how to trust the CA');
  t.match(trust.docker, `/etc/docker/certs.d/localhost:${first.port}/ca.crt`);
  t.match(trust.curl, `--cacert ${caFile}`);
  t.match(trust.skopeo, /--cert-dir/);
  t.equal(await stopCli(first.child), 0, 'SIGTERM: exit 0');

  const second = await startCli(['--upstream', up.url, '--listen', '127.0.0.1:0'], { cwd });
  t.equal(fs.readFileSync(caFile, 'utf8'), ca, 'the CA survives a restart');
  t.match(second.lines.find((l) => l.msg === 'development certificate'), { action: 'reused' });
  t.equal(await get('localhost', second.port, ca), 200, 'clients that trusted the CA still connect');
  await stopCli(second.child);

  const third = await startCli(['--upstream', up.url, '--listen', '127.0.0.1:0', '--public-origin', 'https://registry.test'], { cwd });
  t.equal(fs.readFileSync(caFile, 'utf8'), ca, 'a new public host renews the certificate under the same CA');
  const line = third.lines.find((l) => l.msg === 'development certificate')!;
  t.match(line, { action: 'renewed' });
  t.ok((line.names as string[]).includes('registry.test'), 'the certificate names the public host');
  t.equal(await get('127.0.0.1', third.port, ca, 'registry.test'), 200, 'verified for the public host');
  await stopCli(third.child);
});
