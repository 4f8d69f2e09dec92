import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { onFreePort, waitForPort } from './ports.js';

export const haveNginx = spawnSync('sh', ['-c', 'command -v nginx']).status === 0;


/**
 * nginx from Debian on loopback, plain HTTP, with the server block's body given by the
 * test: an "inner" proxy between berth and the registry, as Harbor and many installs have.
 */
export function startNginx(t: Test, serverBody: string): Promise<{ url: string; port: number }> {
  return onFreePort((port) => startNginxOn(t, serverBody, port));
}

async function startNginxOn(t: Test, serverBody: string, port: number): Promise<{ url: string; port: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-nginx-'));
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
${serverBody}
  }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(() => {
    child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await waitForPort(port, () => (child.exitCode !== null ? `nginx did not start: ${stderr}` : undefined), child.pid).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return { url: `http://127.0.0.1:${port}`, port };
}
