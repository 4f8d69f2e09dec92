import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { validate, ValidationSeverity } from 'dockerfile-utils';
import t from 'tap';
import { envName, KEYS } from '../../src/config/schema.js';
import { buildConfig, fromEnv } from '../../src/config/validate.js';
import { DOCKERFILE, imagePlan, PACKAGE as pkg, planOf, REPLAY, ROOT } from '../helpers/image.js';
import { onFreePort } from '../helpers/ports.js';

const plan = imagePlan();
const image = plan.image;

t.test('lint: dockerfile-utils (the Docker language server) finds nothing, every rule an error', async (t) => {
  const diagnostics = validate(DOCKERFILE, {
    deprecatedMaintainer: ValidationSeverity.ERROR,
    directiveCasing: ValidationSeverity.ERROR,
    emptyContinuationLine: ValidationSeverity.ERROR,
    instructionCasing: ValidationSeverity.ERROR,
    instructionCmdMultiple: ValidationSeverity.ERROR,
    instructionEntrypointMultiple: ValidationSeverity.ERROR,
    instructionHealthcheckMultiple: ValidationSeverity.ERROR,
    instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
    instructionWorkdirRelative: ValidationSeverity.ERROR,
  });
  t.same(
    diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`),
    [],
  );
  // And the linter does see problems: the same rules on a broken file.
  t.ok(validate('from node:24\nWORKDIR app\nCMD ["a"]\nCMD ["b"]\nEXPOSE http\n').length >= 3, 'the linter reports a broken Dockerfile');
});

t.test('policy: what the hardened image promises', async (t) => {
  t.equal(plan.stages.length, 2, 'a build stage and a final stage');
  const [build, final] = plan.stages;
  t.match(build.image, /^node:24-[a-z]+-slim$/, 'Node 24 LTS, slim');
  t.equal(final.image, build.image, 'the final stage on the same base');
  t.match(DOCKERFILE, /FROM node:24-bookworm-slim AS build/, 'the base is pinned to a major and a Debian release');

  const copies = final.steps.filter((s) => s.keyword === 'COPY');
  t.ok(copies.every((c) => c.from === build.name), 'the final stage copies only from the build stage, never the context');
  t.same(copies.map((c) => c.sources).flat().sort(), ['/app/dist', '/app/node_modules', '/app/package.json', '/app/volume/certs'], 'only the compiled output, production dependencies, package.json and the volume directory');
  t.notOk(final.steps.some((s) => s.keyword === 'RUN'), 'no RUN in the final stage: nothing installed at image build time');

  t.match(image.user, /^[1-9]\d*:[1-9]\d*$/, 'a numeric non-root user (Kubernetes runAsNonRoot can verify it)');
  t.equal(image.workdir, '/app');
  t.equal(image.stopSignal, 'SIGTERM', 'STOPSIGNAL is the signal berth drains on');
  t.same(image.healthcheck?.slice(-3), ['dist/cli.js', 'check', '--as-running'], 'HEALTHCHECK is berth check, on the settings of the berth that runs');
  t.equal(image.entrypoint[0], 'node');
  t.equal(image.entrypoint.at(-1), 'dist/cli.js');
  t.same(image.cmd, [], 'no CMD: arguments to docker run are berth flags');

  const labels = image.labels;
  for (const key of ['title', 'description', 'version', 'licenses', 'revision', 'created', 'source', 'base.name']) t.ok(labels[`org.opencontainers.image.${key}`], `label org.opencontainers.image.${key}`);
  t.equal(labels['org.opencontainers.image.version'], pkg.version, 'the version label is package.json\'s');
  t.equal(labels['org.opencontainers.image.licenses'], pkg.license);
  t.equal(labels['org.opencontainers.image.base.name'], `docker.io/library/${build.image}`);

  // Settings: BERTH_* names berth knows, values berth accepts.
  const known = new Set(KEYS.map((k) => envName(k.path)));
  for (const name of Object.keys(image.env)) if (name !== 'NODE_ENV') t.ok(known.has(name), `ENV ${name} is a berth setting`);
  const config = buildConfig([fromEnv(image.env, [])]);
  const ports = [config.listen.port, config.http.listen?.port, config.admin.listen?.port].map(String);
  t.same([...image.exposed].sort(), [...ports].sort(), 'EXPOSE lists the https, http and admin ports the ENV sets');
  t.equal(config.admin.listen?.host, undefined, 'the admin listener is reachable from outside the container (probes)');
  t.ok(image.volumes.includes(config.tls.dir), 'the development certificate directory is a VOLUME (read-only root)');
});

t.test('.dockerignore: the build context holds what the build stage copies and nothing else', async (t) => {
  const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8');
  const lines = ignore.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  t.equal(lines[0], '*', 'everything is excluded first');
  const allowed = lines.slice(1).map((l) => l.replace(/^!/, '').replace(/\/$/, ''));
  const fromContext = plan.stages[0].steps.filter((s) => s.keyword === 'COPY' && !s.from).flatMap((s) => s.sources ?? []);
  t.same([...allowed].sort(), [...fromContext].sort(), 'exactly the context files the Dockerfile copies are let through');
});

t.test('drift: the replay refuses what it cannot replay instead of skipping it', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['an unknown instruction', DOCKERFILE.replace('COPY src ./src', 'ADD src ./src'), /line \d+: ADD: the replay does not know this instruction/],
    ['a RUN on an absolute path', DOCKERFILE.replace('mkdir -p volume/certs', 'mkdir -p /certs'), /uses an absolute path/],
    ['a RUN flag', DOCKERFILE.replace('RUN npm ci', 'RUN --mount=type=cache,target=/root/.npm npm ci'), /flags \(mount\) are not replayed/],
    ['a COPY flag', DOCKERFILE.replace('COPY src ./src', 'COPY --link src ./src'), /--link is not replayed/],
  ];
  for (const [what, text, error] of cases) {
    t.not(text, DOCKERFILE, `${what}: the variant differs`);
    t.match(planOf(text).error ?? '', error, what);
  }
});

const imageMajor = /^node:(\d+)/.exec(plan.stages[0].image)?.[1];
const runnable = process.versions.node.split('.')[0] === imageMajor && process.getuid?.() === 0;
const skip = runnable
  ? false
  : process.env.CI === 'true' && process.versions.node.split('.')[0] === imageMajor
    ? false // CI runs as root on the image's Node: it must replay, not skip
    : `the replay builds on the image's Node (${imageMajor}) and runs the image as root (a mount namespace and chroot); this is Node ${process.versions.node}, uid ${process.getuid?.()} (CI's Node ${imageMajor} pass runs it)`;

t.test('replay: the Dockerfile\'s build steps outside Docker, then the image started read-only as its USER', { skip, timeout: 600_000 }, async (t) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('BERTH_')));
  // env -u: tap's process tracking puts NODE_OPTIONS back into every child's environment,
  // and its loader does not exist inside the replayed image.
  // The admin port as a flag after the image name, which the HEALTHCHECK's own environment
  // does not have: it finds the admin listener only through --as-running.
  // A port another process took first fails the replay's start; it is then run again on another.
  const { code, out, work } = await onFreePort(async (adminPort) => {
    const cmd = ['--admin-listen', `127.0.0.1:${adminPort}`].map((a) => `--cmd=${a}`);
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, REPLAY, '--keep', ...cmd], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const work = /== kept (\S+)/.exec(out)?.[1];
    t.teardown(() => work && fs.rmSync(work, { recursive: true, force: true }));
    if (code !== 0 && /EADDRINUSE/.test(out)) throw new Error(`admin port ${adminPort}: EADDRINUSE`);
    return { code, out, work };
  });
  t.equal(code, 0, 'the replay passes', { output: out.split('\n').slice(-40).join('\n') });
  for (const check of ['the ENTRYPOINT runs as PID 1 in its own PID namespace', 'https GET /v2/ through berth: 200', 'the upstream saw the request', 'admin /healthz: 200', 'HEALTHCHECK', 'STOPSIGNAL SIGTERM: exit 0', 'no write refused by the read-only root', 'nothing outside the volumes changed']) {
    t.match(out, new RegExp(`^ok: ${check.replace(/[/]/g, '\\/')}`, 'm'), check);
  }
  t.match(out, /^== 8 of 8 checks passed$/m);
  t.match(out, /^ok\s+berth-settings\s+those of the berth server running as pid 1 /m, 'the HEALTHCHECK read the settings of PID 1');
  t.match(out, /^ok\s+berth-ready\s+ready: the berth running as pid 1, /m, 'and found its admin listener on the port given as a flag');
  t.match(out, /"msg":"development certificate"/, 'the dev certificate was written to the volume under a read-only root');

  if (!work) return;
  const final = fs.readdirSync(work).filter((d) => d.startsWith('stage-1'))[0];
  const app = path.join(work, final, 'app');
  t.same(fs.readdirSync(app).sort(), ['dist', 'node_modules', 'package.json'], 'the final /app holds the output, production dependencies and package.json');
  const installed = (name: string): boolean => fs.existsSync(path.join(app, 'node_modules', name, 'package.json'));
  for (const dev of Object.keys(pkg.devDependencies)) t.notOk(installed(dev), `no dev dependency ${dev}`);
  for (const dep of Object.keys(pkg.dependencies)) t.ok(installed(dep), `production dependency ${dep}`);
  const owner = fs.statSync(path.join(app, 'dist', 'cli.js')).uid;
  t.equal(owner, 0, 'the code is owned by root, not by the user berth runs as');
});
