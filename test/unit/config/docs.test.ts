import fs from 'node:fs';
import t from 'tap';
import { KEYS, envName } from '../../../src/config/schema.js';

/** Documentation that lists keys must list all of them: a documented default with no code behind it is a bug. */
t.test('the README configuration table names every key, its variable and its flag', async (t) => {
  const readme = fs.readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  for (const spec of KEYS) {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${spec.path}\` |`));
    t.ok(row, `${spec.path} has a row`);
    t.match(row ?? '', `\`${envName(spec.path)}\``, `${spec.path}: environment variable`);
    if (spec.flag) t.match(row ?? '', `\`--${spec.flag}\``, `${spec.path}: flag`);
  }
});

t.test('the README opens with the run and test commands', async (t) => {
  const readme = fs.readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  t.match(block, /^npm ci && npm start\b/m);
  t.match(block, /^npm test\b/m);
  t.ok(readme.indexOf(block) < 200, 'at the top');
});
