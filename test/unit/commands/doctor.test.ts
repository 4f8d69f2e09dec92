import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { FINDING_IDS, docPage, formatJson, formatText, type Finding } from '../../../src/commands/doctor/findings.js';
import { parseDoctorArgs, parseSize } from '../../../src/commands/doctor/index.js';
import { tokenLifetimeFinding } from '../../../src/commands/doctor/auth.js';
import { formatBytes, formatDuration } from '../../../src/commands/doctor/context.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

t.test('every finding id doctor and check can report has its page, and every page an id', async (t) => {
  const commands = path.join(ROOT, 'src/commands');
  const source = fs
    .readdirSync(commands, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => fs.readFileSync(path.join(commands, f), 'utf8'))
    .join('\n');
  const used = new Set([...source.matchAll(/\bid: '([a-z-]+)'/g)].map((m) => m[1]!));
  t.same([...used].sort(), [...FINDING_IDS].sort(), 'the ids in the code are the declared ones');
  const pages = fs.readdirSync(path.join(ROOT, 'docs/doctor')).map((f) => f.replace(/\.md$/, ''));
  t.same([...pages].sort(), [...FINDING_IDS].sort(), 'one page per id');
  for (const id of FINDING_IDS) {
    const text = fs.readFileSync(path.join(ROOT, docPage(id)), 'utf8');
    t.match(text, new RegExp(`^# ${id}: `), `${docPage(id)} is titled with its id`);
  }
});

t.test('arguments: doctor\'s own, the rest for berth; no password on the command line', async (t) => {
  const o = parseDoctorArgs(['--upstream', 'http://r:5000', '--user', 'alice', '--password-stdin', '--repository', 'team/scratch', '--upload-size', '1GiB', '--json', '--ca=ca.crt']);
  t.same(o.berthArgs, ['--upstream', 'http://r:5000']);
  t.equal(o.user, 'alice');
  t.equal(o.passwordStdin, true);
  t.equal(o.repository, 'team/scratch');
  t.equal(o.uploadSize, 1 << 30);
  t.equal(o.json, true);
  t.equal(o.ca, 'ca.crt');
  t.equal(parseDoctorArgs([]).repository, 'library/berth-doctor');
  t.equal(parseDoctorArgs([]).uploadSize, 16 << 20);
  t.throws(() => parseDoctorArgs(['--user', 'alice']), /--password-stdin/, 'a user needs the password on stdin');
  t.throws(() => parseDoctorArgs(['--password-stdin']), /needs --user/);
  t.throws(() => parseDoctorArgs(['--repository', 'Team/Scratch']), /not a repository name/);
  t.throws(() => parseDoctorArgs(['--repository']), /needs a value/);
  t.equal(parseSize('200MB'), 200e6);
  t.equal(parseSize('16MiB'), 16 << 20);
  t.equal(parseSize('4096'), 4096);
  t.throws(() => parseSize('lots'), /expected a size/);
});

t.test('token lifetime against the measured rate: Harbor\'s 30 minutes and a 30 GB image', async (t) => {
  const slow = tokenLifetimeFinding(1800, 10e6);
  t.equal(slow.level, 'warning', '10 MB/s × 30 min = 18 GB: a 30 GB push does not fit');
  t.match(slow.detail, 'tokens last 30 min: at 10.0 MB/s (measured here) a push of up to 18.0 GB finishes in time; a 30 GB image needs 50 min');
  t.match(slow.fix ?? '', /Harbor: raise Token Expiration .* above 50 min/);
  const fast = tokenLifetimeFinding(1800, 100e6);
  t.equal(fast.level, 'ok', '100 MB/s × 30 min = 180 GB');
  t.equal(tokenLifetimeFinding(60, undefined).level, 'warning', 'short, rate unknown');
  t.equal(formatDuration(90), '90 s');
  t.equal(formatDuration(3000), '50 min');
  t.equal(formatBytes(16 << 20), '16 MiB');
  t.equal(formatBytes(18e9), '18.0 GB');
});

t.test('text and JSON: problems with cause, fix and their page', async (t) => {
  const findings: Finding[] = [
    { id: 'tls-names', area: 'tls', level: 'problem', detail: 'names a, not b', cause: 'x509', fix: 'get one for b' },
    { id: 'throughput', area: 'throughput', level: 'ok', detail: '16 MiB in 100 ms' },
    { id: 'tls-trust', area: 'tls', level: 'warning', detail: 'private CA' },
  ];
  const text = formatText(findings);
  t.match(text, /^problem {2}tls-names +names a, not b\n +cause: x509\n +fix: +get one for b\n +more: +docs\/doctor\/tls-names\.md\n/);
  t.notMatch(text, 'docs/doctor/throughput.md', 'ok findings need no page');
  t.match(text, /1 problem, 1 warning\n$/);
  const json = JSON.parse(formatJson(findings)) as { problems: number; warnings: number; findings: { more: string }[] };
  t.equal(json.problems, 1);
  t.equal(json.warnings, 1);
  t.equal(json.findings[0]!.more, 'docs/doctor/tls-names.md');
});

t.test("the registry's signed upload state never reaches doctor's output, text or JSON", async (t) => {
  const upload = 'http://registry:5000/v2/library/berth-doctor/blobs/uploads/3f1c?_state=c2lnbmVk.secret%2Bpart&digest=sha256%3A00';
  const encoded = 'https://r.example.com/v2/a/blobs/uploads/u?x=1&%5Fstate=other-secret';
  const findings: Finding[] = [
    {
      id: 'upload-location',
      area: 'upload',
      level: 'problem',
      detail: `uploads are sent to http://registry:5000 (the registry answered absolute (http://registry:5000) ${upload})`,
      data: { upstreamLocation: upload, clientLocation: encoded, nested: [{ at: upload }], size: 3 },
    },
  ];
  const text = formatText(findings);
  const json = formatJson(findings);
  for (const [name, out] of [['text', text], ['JSON', json]] as const) {
    t.notMatch(out, 'secret', `${name}: no state`);
    t.match(out, '?_state=REDACTED&digest=sha256%3A00', `${name}: the state replaced, the rest of the URL kept`);
  }
  t.match(text, '(http://registry:5000) http://registry:5000/v2/library/berth-doctor/blobs/uploads/3f1c?_state=REDACTED&digest=sha256%3A00)', 'the sentence around it kept');
  const data = (JSON.parse(json) as { findings: { data: Record<string, unknown> }[] }).findings[0]!.data;
  t.same(data, {
    upstreamLocation: 'http://registry:5000/v2/library/berth-doctor/blobs/uploads/3f1c?_state=REDACTED&digest=sha256%3A00',
    clientLocation: 'https://r.example.com/v2/a/blobs/uploads/u?x=1&%5Fstate=REDACTED',
    nested: [{ at: 'http://registry:5000/v2/library/berth-doctor/blobs/uploads/3f1c?_state=REDACTED&digest=sha256%3A00' }],
    size: 3,
  });
});
