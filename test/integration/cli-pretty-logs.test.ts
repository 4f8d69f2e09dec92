import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CLI, NODE_FLAGS, cleanEnv } from '../helpers/cli.js';
import { makeTestPki } from '../helpers/tls.js';

t.test('--log-format pretty prints readable lines, not JSON', async (t) => {
  const pki = await makeTestPki();
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pretty-'));
  t.teardown(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile, '--log-format', 'pretty'], {
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
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 0);
  t.match(out, /INFO.*berth is serving/);
  t.notMatch(out.split('\n')[0], /^\{/, 'not JSON');
});
