#!/usr/bin/env node
/**
 * Replays the Dockerfile's build steps without a Docker engine, then runs the final stage
 * the way a container runtime would, and checks that it serves.
 *
 *   node deploy/replay-dockerfile.mjs [--dockerfile Dockerfile] [--context .] [--plan]
 *                                     [--keep] [--env NAME=VALUE]... [--cmd=ARG]...
 *
 * The steps are read from the Dockerfile itself, so the two cannot drift apart: an
 * instruction this script does not know, a RUN that touches an absolute path, or a base
 * image whose Node major differs from the Node running the script is an error, not a skip.
 *
 * Build: the context (after .dockerignore) is copied aside; each stage gets its own root
 * directory; WORKDIR, COPY (--from, --chown), ENV, ARG and RUN (with /bin/sh -c, in the
 * stage's working directory, with the stage's environment) happen there. The base image's
 * Node is the Node running this script, copied to /usr/local/bin/node as in the node image.
 *
 * Run (needs root, as in CI): in private mount and PID namespaces the final stage's root is
 * bind-mounted read-only (docker run --read-only), each VOLUME gets a writable directory
 * seeded from the image as Docker seeds a new volume, /proc and /dev are mounted, and the
 * ENTRYPOINT + CMD start under chroot as the USER, with the image's ENV plus --env values
 * (--cmd values replace CMD, as arguments after the image name in docker run do).
 * Then: an https request through berth reaches an upstream this script runs (or the one
 * BERTH_UPSTREAM names), the admin /healthz answers, the HEALTHCHECK command exits 0 inside
 * the same "container" (its namespaces), the STOPSIGNAL sent to PID 1 ends it with exit 0, and nothing outside the volumes
 * was written. --plan prints the parsed steps as JSON and stops.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DockerfileParser } from 'dockerfile-ast';

const KNOWN = new Set(['FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'ARG', 'LABEL', 'USER', 'VOLUME', 'EXPOSE', 'STOPSIGNAL', 'HEALTHCHECK', 'ENTRYPOINT', 'CMD']);
const NODE_IN_IMAGE = '/usr/local/bin/node';

class ReplayError extends Error {}
const fail = (message) => {
  throw new ReplayError(message);
};

// ---------------------------------------------------------------------------------------
// Reading the Dockerfile

/** Replaces ${NAME} and $NAME from vars, as Docker does in LABEL, ENV, WORKDIR, COPY, USER. */
function expand(text, vars) {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a, b) => vars[a ?? b] ?? '');
}

function jsonOrShell(inst, text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    try {
      const argv = JSON.parse(trimmed);
      if (Array.isArray(argv) && argv.every((a) => typeof a === 'string')) return argv;
    } catch {
      // falls through to the error below
    }
    fail(`line ${inst.getRange().start.line + 1}: ${inst.getKeyword()} is not a valid JSON array: ${trimmed}`);
  }
  return ['/bin/sh', '-c', trimmed];
}

function flagsOf(inst) {
  const flags = {};
  for (const flag of inst.getFlags?.() ?? []) flags[flag.getName()] = flag.getValue();
  return flags;
}

/** The Dockerfile as a list of stages and their steps; throws on anything not replayable. */
export function plan(text) {
  const parsed = DockerfileParser.parse(text);
  const stages = [];
  let stage;
  for (const inst of parsed.getInstructions()) {
    const keyword = inst.getKeyword();
    const line = inst.getRange().start.line + 1;
    const where = `line ${line}: ${keyword}`;
    if (!KNOWN.has(keyword)) fail(`${where}: the replay does not know this instruction; teach deploy/replay-dockerfile.mjs or use one it knows`);
    if (keyword === 'FROM') {
      const image = inst.getImage();
      const name = inst.getBuildStage();
      const from = stages.find((s) => s.name === image);
      stage = { name, image, parent: from ? stages.indexOf(from) : undefined, steps: [] };
      stages.push(stage);
      continue;
    }
    if (!stage) fail(`${where}: before the first FROM`);
    const args = inst.getArgumentsContent() ?? '';
    const flags = flagsOf(inst);
    switch (keyword) {
      case 'RUN': {
        if (Object.keys(flags).length > 0) fail(`${where}: flags (${Object.keys(flags).join(', ')}) are not replayed`);
        const argv = jsonOrShell(inst, args);
        const command = argv.join(' ');
        // An absolute path would reach outside the stage's directory on this machine.
        if (/(^|[\s=;&|('"])\/(?!dev\/null\b)/.test(argv[0] === '/bin/sh' ? argv[2] : command)) {
          fail(`${where}: "${command}" uses an absolute path; the replay only runs steps relative to WORKDIR`);
        }
        stage.steps.push({ keyword, line, argv });
        break;
      }
      case 'COPY': {
        for (const name of Object.keys(flags)) if (name !== 'from' && name !== 'chown') fail(`${where}: --${name} is not replayed`);
        const parts = inst.getArguments().map((a) => a.getValue());
        if (parts.length < 2) fail(`${where}: needs a source and a destination`);
        stage.steps.push({ keyword, line, from: flags.from ?? undefined, chown: flags.chown ?? undefined, sources: parts.slice(0, -1), dest: parts.at(-1) });
        break;
      }
      case 'ENV':
      case 'LABEL':
        stage.steps.push({ keyword, line, pairs: inst.getProperties().map((p) => [p.getName(), p.getValue() ?? ''] ) });
        break;
      case 'ARG': {
        const [name, ...rest] = args.trim().split('=');
        stage.steps.push({ keyword, line, name, value: rest.length > 0 ? rest.join('=') : undefined });
        break;
      }
      case 'HEALTHCHECK': {
        const match = /^(?:--\S+\s+)*(CMD|NONE)\b\s*([\s\S]*)$/.exec(args.trim().replace(/\\\n/g, ' '));
        if (!match) fail(`${where}: cannot read "${args}"`);
        stage.steps.push({ keyword, line, argv: match[1] === 'NONE' ? null : jsonOrShell(inst, match[2]), flags });
        break;
      }
      case 'ENTRYPOINT':
      case 'CMD':
        stage.steps.push({ keyword, line, argv: jsonOrShell(inst, args) });
        break;
      case 'VOLUME': {
        const trimmed = args.trim();
        stage.steps.push({ keyword, line, paths: trimmed.startsWith('[') ? JSON.parse(trimmed) : trimmed.split(/\s+/) });
        break;
      }
      case 'EXPOSE':
        stage.steps.push({ keyword, line, ports: args.trim().split(/\s+/) });
        break;
      default: // WORKDIR, USER, STOPSIGNAL
        stage.steps.push({ keyword, line, value: args.trim() });
    }
  }
  if (stages.length === 0) fail('no FROM');
  return stages;
}

/** What the final stage declares: the image's runtime configuration. */
export function imageConfig(stages) {
  const final = stages.at(-1);
  const config = { env: {}, labels: {}, user: 'root', workdir: '/', volumes: [], exposed: [], stopSignal: 'SIGTERM', entrypoint: [], cmd: [], healthcheck: undefined };
  const vars = {};
  for (const step of final.steps) {
    switch (step.keyword) {
      case 'ARG':
        vars[step.name] = step.value ?? '';
        break;
      case 'ENV':
        for (const [k, v] of step.pairs) config.env[k] = vars[k] = expand(v, vars);
        break;
      case 'LABEL':
        for (const [k, v] of step.pairs) config.labels[k] = expand(v, vars);
        break;
      case 'USER':
        config.user = expand(step.value, vars);
        break;
      case 'WORKDIR':
        config.workdir = path.posix.resolve(config.workdir, expand(step.value, vars));
        break;
      case 'VOLUME':
        config.volumes.push(...step.paths);
        break;
      case 'EXPOSE':
        config.exposed.push(...step.ports);
        break;
      case 'STOPSIGNAL':
        config.stopSignal = step.value;
        break;
      case 'ENTRYPOINT':
        config.entrypoint = step.argv;
        config.cmd = []; // as Docker: a new ENTRYPOINT resets an inherited CMD
        break;
      case 'CMD':
        config.cmd = step.argv;
        break;
      case 'HEALTHCHECK':
        config.healthcheck = step.argv ?? undefined;
        break;
      default:
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------
// Building

/** .dockerignore: "*", names, "dir/", and "!name" exceptions, on the context's top level. */
function ignoredTopLevel(context) {
  const file = path.join(context, '.dockerignore');
  if (!fs.existsSync(file)) return () => false;
  const rules = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/\/$/, '');
      if (/[?[\]]|\*\*|.\//.test(pattern) || (pattern.includes('*') && pattern !== '*')) fail(`.dockerignore: "${l}" is beyond what the replay reads (top-level names, "*", "!name")`);
      return { negate, pattern };
    });
  return (name) => {
    let ignored = false;
    for (const rule of rules) if (rule.pattern === '*' || rule.pattern === name) ignored = !rule.negate;
    return ignored;
  };
}

function copyContext(context, into) {
  const ignored = ignoredTopLevel(context);
  fs.mkdirSync(into, { recursive: true });
  for (const name of fs.readdirSync(context)) {
    if (name === '.git' || ignored(name)) continue;
    fs.cpSync(path.join(context, name), path.join(into, name), { recursive: true, verbatimSymlinks: true });
  }
}

function chownTree(target, spec) {
  const [user, group = user] = spec.split(':');
  if (!/^\d+$/.test(user) || !/^\d+$/.test(group)) fail(`--chown=${spec}: the replay needs numeric ids`);
  if (process.getuid?.() !== 0) return; // only root can give files away; the run step needs root anyway
  const walk = (p) => {
    fs.lchownSync(p, Number(user), Number(group));
    if (fs.lstatSync(p).isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  walk(target);
}

/** Docker's COPY: a directory's contents go into the destination; files into a directory dest or onto a file name. */
function copyStep(sourceRoot, sources, destInRoot, destSpec, chown) {
  const intoDir = destSpec.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    const from = path.join(sourceRoot, source);
    if (!fs.existsSync(from)) fail(`COPY ${source}: not found (${from})`);
    const isDir = fs.statSync(from).isDirectory();
    const to = isDir || !intoDir ? destInRoot : path.join(destInRoot, path.basename(source));
    fs.mkdirSync(isDir ? to : path.dirname(to), { recursive: true });
    fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });
    if (chown) chownTree(to, chown);
  }
}

/** The environment a RUN step sees: the base image's (the Node running this script first in PATH) plus ENV. */
function runEnv(stageEnv) {
  // What a builder's network and npm setup need (a proxy, its CA), nothing of the caller's
  // npm run or test runner (NODE_OPTIONS, npm_lifecycle_*).
  const keep = /^(HOME|LANG|TMPDIR|https?_proxy|no_proxy|HTTPS?_PROXY|NO_PROXY|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|npm_config_(cache|registry|cafile|proxy|https_proxy|noproxy))$/;
  const env = {};
  for (const [name, value] of Object.entries(process.env)) if (keep.test(name) && value !== undefined) env[name] = value;
  env.PATH = `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
  return { ...env, ...stageEnv };
}

export function build(stages, context, work) {
  const ctx = path.join(work, 'context');
  copyContext(context, ctx);
  const roots = [];
  stages.forEach((stage, index) => {
    const root = path.join(work, `stage-${index}${stage.name ? `-${stage.name}` : ''}`);
    roots.push(root);
    if (stage.parent !== undefined) fs.cpSync(roots[stage.parent], root, { recursive: true, verbatimSymlinks: true });
    else {
      const major = /^node:(\d+)\b/.exec(stage.image)?.[1];
      if (!major) fail(`FROM ${stage.image}: the replay stands in for node:<major> images only`);
      if (major !== process.versions.node.split('.')[0]) fail(`FROM ${stage.image}: run the replay with Node ${major} (this is ${process.version})`);
      fs.mkdirSync(path.join(root, path.dirname(NODE_IN_IMAGE)), { recursive: true });
      fs.copyFileSync(process.execPath, path.join(root, NODE_IN_IMAGE));
      fs.chmodSync(path.join(root, NODE_IN_IMAGE), 0o755);
    }
    let workdir = '/';
    const env = {};
    const vars = {};
    const inRoot = (p) => path.join(root, path.posix.resolve(workdir, p));
    for (const step of stage.steps) {
      const label = `stage ${stage.name ?? index}, line ${step.line}: ${step.keyword}`;
      switch (step.keyword) {
        case 'WORKDIR':
          workdir = path.posix.resolve(workdir, expand(step.value, vars));
          fs.mkdirSync(path.join(root, workdir), { recursive: true });
          break;
        case 'ARG':
          vars[step.name] = step.value ?? '';
          break;
        case 'ENV':
          for (const [k, v] of step.pairs) env[k] = vars[k] = expand(v, vars);
          break;
        case 'COPY': {
          let sourceRoot = ctx;
          if (step.from !== undefined) {
            const i = stages.findIndex((s, n) => s.name === step.from || String(n) === step.from);
            if (i < 0 || i >= index) fail(`${label}: --from=${step.from} is not an earlier stage`);
            sourceRoot = roots[i];
          }
          copyStep(sourceRoot, step.sources.map((s) => expand(s, vars)), inRoot(expand(step.dest, vars)), step.dest, step.chown);
          break;
        }
        case 'RUN': {
          console.log(`== ${label}: ${step.argv.join(' ')}`);
          const ran = spawnSync(step.argv[0], step.argv.slice(1), { cwd: path.join(root, workdir), env: runEnv(env), stdio: 'inherit' });
          if (ran.status !== 0) fail(`${label} failed (exit ${ran.status ?? ran.signal})`);
          break;
        }
        default:
      }
    }
  });
  return roots.at(-1);
}

// ---------------------------------------------------------------------------------------
// Running the final stage as a read-only "container"

/** The shared libraries the node binary needs, copied to the same paths under root. */
function addRuntimeFiles(root, user) {
  const ldd = spawnSync('ldd', [path.join(root, NODE_IN_IMAGE)], { encoding: 'utf8' });
  if (ldd.status !== 0) fail(`ldd ${NODE_IN_IMAGE}: ${ldd.stderr}`);
  for (const m of ldd.stdout.matchAll(/(\/\S+)\s+\(0x/g)) {
    const lib = m[1];
    const target = path.join(root, lib);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (!fs.existsSync(target)) fs.copyFileSync(fs.realpathSync(lib), target);
  }
  for (const dir of ['proc', 'dev', 'tmp', 'etc', 'bin']) fs.mkdirSync(path.join(root, dir), { recursive: true });
  // The image's /bin/sh is dash, which needs only libc (already there for node).
  fs.copyFileSync(fs.realpathSync('/bin/sh'), path.join(root, 'bin/sh'));
  fs.chmodSync(path.join(root, 'bin/sh'), 0o755);
  const [uid, gid = uid] = user.split(':');
  fs.writeFileSync(path.join(root, 'etc/passwd'), `root:x:0:0:root:/root:/bin/sh\nnode:x:${uid}:${gid}::/home/node:/bin/sh\n`);
  fs.writeFileSync(path.join(root, 'etc/group'), `root:x:0:\nnode:x:${gid}:\n`);
  fs.writeFileSync(path.join(root, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n');
}

function snapshot(root, skip) {
  const files = new Map();
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (skip.has(p)) continue;
      const st = fs.lstatSync(p);
      files.set(path.relative(root, p), `${st.size}:${st.mtimeMs}:${st.mode}`);
      if (entry.isDirectory()) walk(p);
    }
  };
  walk(root);
  return files;
}

function startUpstream() {
  return new Promise((resolve) => {
    const seen = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-Api-Version': 'registry/2.0' });
      res.end('{}');
    });
    server.listen(0, '127.0.0.1', () => resolve({ server, seen, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

function get(url, options = {}) {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).get(url, { ...options, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
  });
}

export async function run(root, config, work, extraEnv, cmd) {
  if (process.getuid?.() !== 0) fail('running the image needs root (a mount namespace, chroot and a user switch), as in CI');
  const user = config.user;
  if (!/^\d+(:\d+)?$/.test(user)) fail(`USER ${user}: the replay needs numeric ids`);
  addRuntimeFiles(root, user);
  fs.chmodSync(work, 0o755);

  // Each volume: a writable directory seeded from the image, with its owner, as Docker does.
  const volumes = config.volumes.map((v, i) => {
    const dir = path.join(work, `volume-${i}`);
    const inImage = path.join(root, v);
    if (fs.existsSync(inImage)) fs.cpSync(inImage, dir, { recursive: true, preserveTimestamps: true });
    else fs.mkdirSync(dir, { recursive: true });
    const st = fs.existsSync(inImage) ? fs.statSync(inImage) : { uid: 0, gid: 0 };
    fs.chownSync(dir, st.uid, st.gid);
    return { dir, at: v };
  });
  const before = snapshot(root, new Set(volumes.map((v) => path.join(root, v.at))));

  const upstream = extraEnv.BERTH_UPSTREAM ? undefined : await startUpstream();
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/home/node', ...config.env, ...(upstream ? { BERTH_UPSTREAM: upstream.url } : {}), ...extraEnv };
  const argv = [...config.entrypoint, ...(cmd ?? config.cmd)]; // docker run IMAGE ARG... replaces CMD
  if (argv[0] === 'node') argv[0] = NODE_IN_IMAGE;
  const q = (s) => `'${s.replaceAll("'", "'\\''")}'`;
  const setup = [
    'set -e',
    `R=${q(root)}`,
    'mount --bind "$R" "$R"',
    'mount -o remount,bind,ro "$R"',
    'mount -t proc proc "$R/proc"',
    'mount --rbind /dev "$R/dev"',
    ...volumes.map((v) => `mount --bind ${q(v.dir)} "$R"${q(v.at)}`),
    `cd "$R"${q(config.workdir)}`,
    `exec chroot --userspec=${user} "$R" sh -c 'cd "$0" && exec "$@"' ${q(config.workdir)} ${argv.map(q).join(' ')}`,
  ];
  // Its own mount and PID namespaces: the ENTRYPOINT is PID 1 and /proc shows only the
  // "container", as under a container runtime.
  const child = spawn('unshare', ['--mount', '--pid', '--fork', '--propagation', 'private', 'sh', '-c', setup.join('\n')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let text = '';
  const onData = (d) => {
    process.stdout.write(d);
    text += d.toString();
    let nl;
    while ((nl = text.indexOf('\n')) >= 0) {
      lines.push(text.slice(0, nl));
      text = text.slice(nl + 1);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

  const results = [];
  const check = (ok, what) => {
    results.push({ ok, what });
    console.log(`${ok ? 'ok' : 'FAILED'}: ${what}`);
  };
  try {
    const serving = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('berth did not log "berth is serving" within 30 s')), 30_000);
      const poll = setInterval(() => {
        const line = lines.map((l) => { try { return JSON.parse(l); } catch { return undefined; } }).find((l) => l?.msg === 'berth is serving');
        if (line) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve(line);
        }
      }, 50);
      exited.then((e) => { clearTimeout(timer); clearInterval(poll); reject(new Error(`exited before serving (${e.code ?? e.signal})`)); });
    });
    // unshare --fork's one child is the ENTRYPOINT (sh, chroot and sh exec into it).
    const entrypoint = Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim());
    check(/NSpid:\s+\d+\s+1$/m.test(fs.readFileSync(`/proc/${entrypoint}/status`, 'utf8')), 'the ENTRYPOINT runs as PID 1 in its own PID namespace');
    const port = Number(new URL(serving.listen).port);
    const caFile = volumes.map((v) => path.join(v.dir, 'berth-dev-ca.crt')).find((f) => fs.existsSync(f));
    const answer = await get(`https://127.0.0.1:${port}/v2/`, { servername: 'localhost', ...(caFile ? { ca: fs.readFileSync(caFile) } : { rejectUnauthorized: false }) });
    check(answer.status === 200 && answer.headers['docker-distribution-api-version'] === 'registry/2.0', `https GET /v2/ through berth: ${answer.status}, from the upstream (${caFile ? 'verified against the dev CA in the volume' : 'certificate not verified'})`);
    if (upstream) check(upstream.seen.includes('GET /v2/'), 'the upstream saw the request');
    if (serving.admin !== 'off') {
      const admin = new URL(serving.admin);
      const health = await get(`http://127.0.0.1:${admin.port}/healthz`);
      check(health.status === 200, `admin /healthz: ${health.status}`);
    }
    if (config.healthcheck) {
      const hc = [...config.healthcheck];
      if (hc[0] === 'node') hc[0] = NODE_IN_IMAGE;
      // Not spawnSync: the upstream this script runs must keep answering meanwhile.
      const hcRun = spawn('nsenter', ['--target', String(entrypoint), '--mount', '--pid', 'chroot', `--userspec=${user}`, root, 'sh', '-c', 'cd "$0" && exec "$@"', config.workdir, ...hc], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      hcRun.stdout.on('data', (d) => (out += d));
      hcRun.stderr.on('data', (d) => (out += d));
      const hcTimer = setTimeout(() => hcRun.kill('SIGKILL'), 30_000);
      const [status, signal] = await new Promise((resolve) => hcRun.on('exit', (c, s) => resolve([c, s])));
      clearTimeout(hcTimer);
      console.log(out.trimEnd());
      check(status === 0, `HEALTHCHECK ${config.healthcheck.join(' ')}: exit ${status ?? signal}`);
    }
    const beforeStop = lines.length;
    process.kill(entrypoint, config.stopSignal); // as docker stop: to PID 1
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const end = await exited;
    clearTimeout(timer);
    check(end.code === 0, `STOPSIGNAL ${config.stopSignal}: exit ${end.code ?? end.signal}`);
    const writeErrors = lines.slice(0, beforeStop).filter((l) => /EROFS|EACCES/.test(l));
    check(writeErrors.length === 0, `no write refused by the read-only root${writeErrors.length ? `: ${writeErrors[0]}` : ''}`);
    const after = snapshot(root, new Set(volumes.map((v) => path.join(root, v.at))));
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
    check(changed.length === 0, `nothing outside the volumes changed${changed.length ? `: ${changed.slice(0, 5).join(', ')}` : ''}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    upstream?.server.close();
  }
  return results;
}

// ---------------------------------------------------------------------------------------

async function main() {
  const { values } = parseArgs({
    options: {
      dockerfile: { type: 'string', default: 'Dockerfile' },
      context: { type: 'string', default: '.' },
      plan: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      cmd: { type: 'string', multiple: true },
    },
  });
  const stages = plan(fs.readFileSync(values.dockerfile, 'utf8'));
  if (values.plan) {
    console.log(JSON.stringify({ stages, image: imageConfig(stages) }, null, 2));
    return 0;
  }
  const extraEnv = Object.fromEntries(
    values.env.map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 1) fail(`--env ${pair}: expected NAME=VALUE`);
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-replay-'));
  console.log(`== replaying ${values.dockerfile} in ${work}`);
  try {
    const root = build(stages, path.resolve(values.context), work);
    const results = await run(root, imageConfig(stages), work, extraEnv, values.cmd);
    const failed = results.filter((r) => !r.ok);
    console.log(`== ${results.length - failed.length} of ${results.length} checks passed`);
    return failed.length === 0 ? 0 : 1;
  } finally {
    if (values.keep) console.log(`== kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(err instanceof ReplayError ? `replay: ${err.message}` : err);
      process.exit(2);
    },
  );
}
