import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import selfsigned from 'selfsigned';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The berth builds a per-request benchmark measures: this checkout's, then each of
 * BENCH_BERTH_ALSO ("label=DIR,…", every DIR a checkout with dist/ built), named
 * `berth@label`. Ends the script when one is not built.
 */
export function berthBuilds() {
  const builds = [{ name: 'berth', entry: path.join(root, 'dist', 'cli.js') }];
  for (const item of (process.env.BENCH_BERTH_ALSO ?? '').split(',').filter(Boolean)) {
    const [label, dir] = item.split('=');
    builds.push({ name: `berth@${label}`, entry: path.resolve(dir ?? '', 'dist', 'cli.js') });
  }
  for (const build of builds) {
    if (!fs.existsSync(build.entry)) {
      console.error(`bench: ${build.entry} is missing; build it first (npm run build)`);
      process.exit(2);
    }
  }
  return builds;
}

/** Ends the script when a command it needs is not installed; `packages` says which Debian packages bring them. */
export function requireCommands(commands, packages) {
  for (const command of commands) {
    if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) {
      console.error(`bench: ${command} is missing (Debian: apt-get install ${packages})`);
      process.exit(2);
    }
  }
}

/** A self-signed certificate for localhost (P-256), written into `dir`: the files' paths. */
export async function localhostCertificate(dir) {
  const cert = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
  });
  const files = { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
  fs.writeFileSync(files.cert, cert.cert);
  fs.writeFileSync(files.key, cert.private, { mode: 0o600 });
  return files;
}
