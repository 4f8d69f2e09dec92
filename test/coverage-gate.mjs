#!/usr/bin/env node
// The coverage gate: fails when the tests cover less of src/ than they did when the gate
// was last raised, so coverage cannot fall silently. Reads the json-summary report that
// `npm test` (tap, with "coverage-report" in package.json) writes; CI runs it after each
// pass (.ci/run), with the Debian packages installed so that every suite runs. Raise the
// floors when the suite covers more; never lower them to let a change through.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Percent of src/ covered: a little under what the full suite reached (2026-11-30, Node 24: lines 96.96, statements 96.41, functions 94.59, branches 89.39). */
const FLOORS = { lines: 96, statements: 95.5, functions: 94, branches: 88.5 };

const root = fileURLToPath(new URL('..', import.meta.url));
const report = path.join(root, '.tap/report/coverage-summary.json');
if (!fs.existsSync(report)) {
  console.error(`coverage gate: no ${path.relative(root, report)}: run npm test (with coverage) first`);
  process.exit(1);
}
const summary = JSON.parse(fs.readFileSync(report, 'utf8'));
const src = path.join(root, 'src') + path.sep;
const totals = {};
let files = 0;
for (const [file, counts] of Object.entries(summary)) {
  if (!path.resolve(root, file).startsWith(src)) continue;
  files++;
  for (const kind of Object.keys(FLOORS)) {
    totals[kind] ??= { total: 0, covered: 0 };
    totals[kind].total += counts[kind].total;
    totals[kind].covered += counts[kind].covered;
  }
}
const low = [];
const line = Object.entries(FLOORS).map(([kind, floor]) => {
  const { total, covered } = totals[kind] ?? { total: 0, covered: 0 };
  const pct = total === 0 ? 0 : (100 * covered) / total;
  if (pct < floor) low.push(`${kind} ${pct.toFixed(2)}% < ${floor}%`);
  return `${kind} ${pct.toFixed(2)}% (floor ${floor}%)`;
});
console.log(`coverage of src/ (${files} files): ${line.join(', ')}`);
if (files === 0 || low.length > 0) {
  console.error(`coverage gate: ${files === 0 ? 'no src/ file in the report' : `below the floor: ${low.join('; ')}`}`);
  process.exit(1);
}
