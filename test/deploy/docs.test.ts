import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ERRORS } from '../../src/proxy/errors.js';
import { ROOT } from '../helpers/image.js';

/** The Markdown we ship: the README, docs/, and the READMEs beside the deploy files. */
function markdownFiles(): string[] {
  const found = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.md')) found.push(rel);
    }
  };
  walk('docs');
  walk('deploy');
  return found;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

t.test('every relative link in the shipped Markdown points at a file (and heading) that exists', async (t) => {
  for (const file of markdownFiles()) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      if (/^[a-z]+:/.test(link)) continue; // https:, mailto:
      const [target, fragment] = link.split('#') as [string, string | undefined];
      const resolved = target ? path.join(path.dirname(path.join(ROOT, file)), target) : path.join(ROOT, file);
      t.ok(fs.existsSync(resolved), `${file}: ${link}`);
      if (fragment && resolved.endsWith('.md') && fs.existsSync(resolved)) {
        t.ok(anchors(fs.readFileSync(resolved, 'utf8')).has(fragment), `${file}: ${link} (heading)`);
      }
    }
  }
});

t.test('a guide per setup, each saying what was run to check it', async (t) => {
  for (const guide of ['harbor.md', 'distribution.md', 'kubernetes.md', 'local-dev.md']) {
    const text = fs.readFileSync(path.join(ROOT, 'docs', guide), 'utf8');
    t.match(text, /^## What was run to check this guide$/m, `${guide} records what was run`);
  }
});

t.test('troubleshooting covers what clients print, and quotes berth\'s own messages exactly', async (t) => {
  const text = fs.readFileSync(path.join(ROOT, 'docs/troubleshooting.md'), 'utf8');
  const rows = text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---') && !l.startsWith('| the client prints'));
  for (const symptom of ['unknown blob', 'blob upload invalid', 'unauthorized', 'x509: certificate signed by unknown authority', '413', '60 s, 5 min', 'redirect']) {
    t.ok(rows.some((r) => r.split(' | ')[0]!.includes(symptom)), `a row for "${symptom}"`);
  }
  t.ok(rows.every((r) => r.split(' | ').length >= 3 && r.split(' | ')[2]!.trim().length > 10), 'every row has a cause and a fix');
  t.match(text, /30 minutes[^|]*\*\*berth cannot fix this/, 'Harbor\'s token expiry, which berth cannot fix, is there');

  const messages = new Set<string>(Object.values(ERRORS).map((e) => e.message));
  for (const m of text.matchAll(/`(berth: [^`…]+)(…)?`/g)) {
    const quoted = m[1]!;
    const known = m[2] ? [...messages].some((msg) => msg.startsWith(quoted)) : messages.has(quoted);
    t.ok(known, `"${quoted}" is what berth says`);
  }
  const example = /```\n(\{"errors".+\})\n```/.exec(text)?.[1];
  const e = ERRORS.upstream_unreachable;
  t.equal(example, JSON.stringify({ errors: [{ code: e.code, message: e.message, detail: null }] }), 'the example error body is berth\'s');
});
