import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

// `npm start` builds first (prestart), but only when the sources changed since the last
// build: starting berth again does not recompile it. Run in a copy of the project, so that
// the build under test is not the one the other tests run.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

t.test('npm start compiles once, then again only when a source changed', { timeout: 180_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-once-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const file of ['package.json', 'tsconfig.json']) fs.copyFileSync(path.join(ROOT, file), path.join(dir, file));
  fs.cpSync(path.join(ROOT, 'src'), path.join(dir, 'src'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const cli = path.join(dir, 'dist/cli.js');
  // As a user's shell has it: not the npm settings of the npm running this suite (CI's second
  // pass runs it with --ignore-scripts, which would skip prestart), nor tap's NODE_OPTIONS.
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_'))), NODE_OPTIONS: '' };
  const start = (): { status: number | null; stdout: string; mtime: number } => {
    const run = spawnSync('npm', ['start', '--silent', '--', '--version'], { cwd: dir, encoding: 'utf8', env });
    return { status: run.status, stdout: run.stdout + run.stderr, mtime: fs.statSync(cli).mtimeMs };
  };

  const first = start();
  t.equal(first.status, 0, first.stdout);
  t.match(first.stdout, /^berth \d+\.\d+\.\d+/m, 'the first start built berth and ran it');
  await new Promise((r) => setTimeout(r, 50)); // a rewrite would then show in the time stamp
  const second = start();
  t.equal(second.status, 0, second.stdout);
  t.equal(second.mtime, first.mtime, 'the second start did not compile again');

  // The README's way to run berth's commands in a clone.
  const npx = spawnSync('npx', ['--no-install', 'berth', '--version'], { cwd: dir, encoding: 'utf8', env });
  t.equal(npx.status, 0, npx.stderr);
  t.match(npx.stdout, /^berth \d+\.\d+\.\d+/m, 'npx berth runs the built command');

  fs.appendFileSync(path.join(dir, 'src/cli.ts'), '\n// changed\n');
  const third = start();
  t.equal(third.status, 0, third.stdout);
  t.ok(third.mtime > second.mtime, 'a changed source is compiled at the next start');
  t.match(fs.readFileSync(cli, 'utf8'), /\/\/ changed/);
});
