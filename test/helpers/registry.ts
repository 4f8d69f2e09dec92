import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

export const REGISTRY_USER = 'pusher';
export const REGISTRY_PASSWORD = 'berth-test-password';

export interface TestRegistry {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  readonly root: string;
}

function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The end-to-end tools (Debian's docker-registry, skopeo, htpasswd). .ci/run installs
 * them; on a developer machine without them the suite is skipped with this reason,
 * but under CI a missing tool fails the run.
 */
export function e2eTools(): { ok: true } | { ok: false; missing: string[] } {
  const missing = ['docker-registry', 'skopeo', 'htpasswd', 'curl'].filter((c) => !which(c));
  if (missing.length && process.env.CI) throw new Error(`CI is set but the end-to-end tools are missing: ${missing.join(', ')}`);
  return missing.length ? { ok: false, missing } : { ok: true };
}

/**
 * The real Distribution registry on 127.0.0.1 with an ephemeral port, htpasswd auth and
 * its own storage. REGISTRY_* variables would override its config, so none are passed on.
 */
function authSection(auth: RegistryAuth, htpasswd: string): string {
  if (auth === 'none') return '';
  if (auth === 'htpasswd') return `auth: { htpasswd: { realm: berth-test, path: ${JSON.stringify(htpasswd)} } }`;
  const { realm, service, issuer, rootCertBundle } = auth.token;
  return `auth: { token: { realm: ${JSON.stringify(realm)}, service: ${JSON.stringify(service)}, issuer: ${JSON.stringify(issuer)}, rootcertbundle: ${JSON.stringify(rootCertBundle)} } }`;
}

/** How the registry authenticates: htpasswd (REGISTRY_USER), none, or tokens from a token service. */
export type RegistryAuth = 'htpasswd' | 'none' | { readonly token: { readonly realm: string; readonly service: string; readonly issuer: string; readonly rootCertBundle: string } };

export async function startRegistry(t: Test, options: { relativeUrls: boolean; auth?: RegistryAuth; storageRedirect?: string }): Promise<TestRegistry> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-registry-'));
  const htpasswd = execFileSync('htpasswd', ['-Bbn', REGISTRY_USER, REGISTRY_PASSWORD], { encoding: 'utf8' });
  fs.writeFileSync(path.join(root, 'htpasswd'), htpasswd);
  const config = [
    'version: 0.1',
    'log: { level: info, formatter: text }',
    `storage: { filesystem: { rootdirectory: ${JSON.stringify(path.join(root, 'data'))} }, delete: { enabled: true } }`,
    `http: { addr: "127.0.0.1:0", secret: berth-test-secret, relativeurls: ${options.relativeUrls} }`,
    authSection(options.auth ?? 'htpasswd', path.join(root, 'htpasswd')),
    // Blob GETs answered with a redirect to this origin and the blob's storage path, as on object storage.
    options.storageRedirect ? `middleware: { storage: [ { name: redirect, options: { baseurl: ${JSON.stringify(options.storageRedirect)} } } ] }` : '',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(root, 'config.yml'), config);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const child = spawn('docker-registry', ['serve', path.join(root, 'config.yml')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
    fs.rmSync(root, { recursive: true, force: true });
  });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (match) {
        child.stderr!.off('data', onData);
        child.stdout!.off('data', onData);
        child.stderr!.resume();
        child.stdout!.resume();
        resolve(Number(match[1]));
      }
    };
    child.stderr!.on('data', onData);
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`docker-registry exited with ${code}: ${seen.slice(-2000)}`)));
  });
  return { url: `http://127.0.0.1:${port}`, port, process: child, root };
}
