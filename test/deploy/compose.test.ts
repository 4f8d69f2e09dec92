import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import YAML from 'yaml';
import { envName } from '../../src/config/schema.js';
import { buildConfig, fromEnv, parseDuration } from '../../src/config/validate.js';
import { startCli, stopCli } from '../helpers/cli.js';
import { imagePlan, PACKAGE, ROOT } from '../helpers/image.js';
import { makeTestPki } from '../helpers/tls.js';

const COMPOSE_DIR = path.join(ROOT, 'deploy/compose');
const EXAMPLES = fs.readdirSync(COMPOSE_DIR).filter((d) => fs.existsSync(path.join(COMPOSE_DIR, d, 'docker-compose.yml')));
const image = imagePlan().image;

const hasCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
const skip = hasCompose || process.env.CI === 'true' ? false : 'docker-compose is not installed (Debian package docker-compose; CI installs it)';

interface Service {
  image?: string;
  build?: { context: string };
  environment?: Record<string, string | null>;
  ports?: { published: number | string; target: number }[];
  volumes?: string[];
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  stop_grace_period?: string;
  network_mode?: string;
  networks?: Record<string, unknown>;
}

/** `docker-compose config`: the file validated and resolved, as Compose itself reads it. */
function composeConfig(dir: string): { services: Record<string, Service> } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(REGISTRY_HOST|HARBOR_HOST|REGISTRY_HTTP_SECRET|BERTH_.*)$/.test(k)));
  const ran = spawnSync('docker-compose', ['--no-ansi', 'config'], { cwd: dir, encoding: 'utf8', env });
  if (ran.status !== 0) throw new Error(`docker-compose config in ${dir} failed:\n${ran.stderr}`);
  return YAML.parse(ran.stdout) as { services: Record<string, Service> };
}

t.test('every example has a README', async (t) => {
  t.same([...EXAMPLES].sort(), ['dev', 'harbor', 'registry']);
  for (const example of EXAMPLES) t.ok(fs.existsSync(path.join(COMPOSE_DIR, example, 'README.md')), `${example}/README.md`);
});

for (const example of EXAMPLES) {
  t.test(`compose example "${example}"`, { skip, timeout: 60_000 }, async (t) => {
    const compose = composeConfig(path.join(COMPOSE_DIR, example));
    t.pass('docker-compose config accepts it');
    const berth = compose.services.berth;
    if (!berth) throw new Error('no berth service');

    // The service runs the image as built from this repository, hardened as the image allows.
    t.equal(berth.image, `berth:${PACKAGE.version}`, 'the image tag is the package version');
    if (berth.build) t.equal(path.resolve(berth.build.context), path.resolve(ROOT), 'built from the repository root (the Dockerfile)');
    t.equal(berth.read_only, true, 'read-only root filesystem');
    t.same(berth.cap_drop, ['ALL'], 'all capabilities dropped');
    t.ok(berth.security_opt?.includes('no-new-privileges:true'), 'no privilege escalation');

    const env: Record<string, string> = { ...image.env };
    for (const [k, v] of Object.entries(berth.environment ?? {})) if (v !== null) env[k] = v;
    for (const name of Object.keys(berth.environment ?? {})) t.match(name, /^BERTH_/, `${name} is a berth variable`);
    const config = buildConfig([fromEnv(env, [])]);
    t.pass('the image ENV plus the service environment is a valid berth configuration');
    t.ok(parseDuration(berth.stop_grace_period) > config.shutdown.grace, `stop_grace_period ${berth.stop_grace_period} exceeds shutdown.grace, so a drain is not cut`);

    const ports = (berth.ports ?? []).map((p) => String(p.target));
    for (const port of ports) t.ok(image.exposed.includes(port), `published port ${port} is one the image exposes`);
    if (berth.network_mode !== 'host') t.same(ports.sort(), [String(config.listen.port), String(config.http.listen?.port)].sort(), 'the https and http listeners are published (the admin port is not)');

    // Every path the environment names is inside a mounted volume; the dev certificate directory is writable.
    const mounts = (berth.volumes ?? []).map((v) => {
      const [source, target, mode] = v.split(':') as [string, string, string | undefined];
      return { source, target, readOnly: mode === 'ro' };
    });
    const mountOf = (p: string) => mounts.find((m) => p === m.target || p.startsWith(`${m.target}/`));
    if (config.tls.cert) {
      t.ok(mountOf(config.tls.cert), `${envName('tls.cert')} is on a mounted volume`);
      t.ok(mountOf(config.tls.key!), `${envName('tls.key')} is on a mounted volume`);
    } else {
      const certs = mountOf(config.tls.dir);
      t.ok(certs && !certs.readOnly, `no certificate set: ${config.tls.dir} (development CA) is a writable volume`);
    }

    // Start berth with the same variables: listeners on free loopback ports, each mounted
    // directory a temporary one (holding a test certificate where the service expects one).
    const host = config.publicOrigin?.host ?? 'localhost';
    const pki = await makeTestPki([host]);
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `berth-compose-${example}-`));
    t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
    const local = (p: string): string => {
      const m = mountOf(p);
      return m ? path.join(root, p) : p;
    };
    for (const m of mounts) fs.mkdirSync(path.join(root, m.target), { recursive: true });
    if (config.tls.cert) {
      fs.writeFileSync(local(config.tls.cert), pki.cert);
      fs.writeFileSync(local(config.tls.key!), pki.key);
    }
    const run: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) run[k] = v.startsWith('/') ? local(v) : v;
    for (const key of ['listen', 'http.listen', 'admin.listen']) if (run[envName(key)] && run[envName(key)] !== 'off') run[envName(key)] = '127.0.0.1:0';
    run[envName('log.format')] = 'json';
    const cli = await startCli([], { env: run, cwd: root });
    t.teardown(() => (cli.child.exitCode === null ? cli.child.kill('SIGKILL') : undefined));
    t.notOk(cli.lines.some((l) => l.level === 50 || l.level === 60), 'no error logged at start');

    const ca = config.tls.cert ? pki.ca : fs.readFileSync(path.join(local(config.tls.dir), 'berth-dev-ca.crt'), 'utf8');
    const answer = await new Promise<{ status: number; body: string; subject: string }>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port: cli.port, servername: host, path: '/v2/', headers: { host }, ca, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body, subject: String((res.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '') }));
      });
      req.on('error', reject);
    });
    t.equal(answer.subject, config.tls.cert ? host : answer.subject, 'the certificate from the mounted files is served');
    // The upstream (a compose service name, or a registry on the developer's loopback) is not
    // running here: berth answers for it in the registry's error shape.
    t.equal(answer.status, 502, `GET /v2/ as ${host}: berth serves it and reports the missing upstream`);
    t.match(answer.body, /"errors":\[\{"code":"UNAVAILABLE"/);
    t.equal(await stopCli(cli.child), 0, 'and stops cleanly');
  });
}
