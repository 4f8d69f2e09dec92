import fs from 'node:fs';
import t from 'tap';
import { WORKER_V8_FLAGS, workerExecArgv } from '../../../src/server/cluster.js';

t.test("workers get berth's V8 flags unless the operator gave the setting, in any spelling", async (t) => {
  t.same(workerExecArgv([], ''), WORKER_V8_FLAGS, 'a primary started without them: all added');
  t.same(workerExecArgv(['--inspect=0'], ''), ['--inspect=0', ...WORKER_V8_FLAGS], "the primary's own flags first");
  const own = (execArgv: string[], nodeOptions = ''): string[] => workerExecArgv(execArgv, nodeOptions).filter((flag) => !execArgv.includes(flag));
  t.notOk(own(['--max-semi-space-size=8']).some((f) => f.startsWith('--max-semi-space-size')), 'own semi-space size');
  t.notOk(own([], '--max_semi_space_size=16').some((f) => f.startsWith('--max-semi-space-size')), 'from NODE_OPTIONS, with underscores');
  t.notOk(own(['--parallel-scavenge']).includes('--no-parallel-scavenge'), 'parallel scavenging asked for: not turned off');
  t.same(own(['--no-parallel-scavenge', '--expose-gc']), ['--max-semi-space-size=4'], 'given already: not repeated');
});

t.test('the shebang, npm start and the image start berth with the same V8 flags its primary gives workers', async (t) => {
  const read = (file: string): string => fs.readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');
  const shebang = read('src/cli.ts').split('\n')[0]!;
  t.equal(shebang, `#!/usr/bin/env -S node ${WORKER_V8_FLAGS.join(' ')}`, 'src/cli.ts');
  const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start;
  t.equal(start, `node ${WORKER_V8_FLAGS.join(' ')} dist/cli.js`, 'package.json start');
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
  t.same(JSON.parse(entrypoint ?? '[]'), ['node', ...WORKER_V8_FLAGS, 'dist/cli.js'], 'Dockerfile ENTRYPOINT');
});
