import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CLI, NODE_FLAGS, cleanEnv } from '../helpers/cli.js';
import { makeTestPki } from '../helpers/tls.js';

t.test('--log-format pretty prints readable lines, not JSON, one per entry: a request as an access log line', async (t) => {
  const pki = await makeTestPki();
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pretty-'));
  t.teardown(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile, '--log-format', 'pretty', '--upstream', 'http://127.0.0.1:9', '--workers', '1', '--admin-listen', 'off'], {
    cwd,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('berth is serving')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const port = Number(/"listen":"https:\/\/127\.0\.0\.1:(\d+)"/.exec(out)?.[1]);
  // The upstream refuses connections: berth answers 502 and says why.
  const status = await new Promise<number | undefined>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/v2/lib/blobs/uploads/u1?_state=secret', servername: 'localhost', ca: pki.ca }, (res) => resolve(res.resume().statusCode)).on('error', reject);
  });
  t.equal(status, 502);
  while (!out.includes('request GET')) await once(child.stdout, 'data');
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 0);
  t.match(out, /INFO.*berth is serving/);
  t.notMatch(out.split('\n')[0], /^\{/, 'not JSON');
  const lines = out.trimEnd().split('\n');
  t.same(lines.filter((l) => !/^\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+: /.test(l)), [], 'each entry on one line of its own: time, level, message');
  const requests = lines.filter((l) => l.includes('request GET'));
  t.equal(requests.length, 1, 'one line for the request');
  t.match(requests[0], /^\[[\d:.]+\] INFO: request GET \/v2\/lib\/blobs\/uploads\/u1\?_state=REDACTED 502 [\d.]+ ms \{.*"client":"127\.0\.0\.1".*"error":"upstream_unreachable"/, 'method, path (redacted), status and duration first, then the rest inline');
});
