// src/cli.ts asks Node how it carries async context before anything is queued. Node 24 (where
// AsyncLocalStorage runs on AsyncContextFrame) decides that lazily and then puts the active
// versions of its functions in place; callbacks queued before that leave V8 feedback for both
// versions in process.nextTick, timers and AsyncResource, and a worker (whose start-up
// exchanges with the primary queue ticks before anything else asks) then pays for it on
// every request (docs/performance.md, "Workers"). This test watches the switch, through
// Node's internal module: it fails if berth's entry module stops settling it, or if Node
// changes the mechanism.
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { CLI } from '../../helpers/cli.js';

const run = promisify(execFile);

t.test("berth's entry module settles how Node carries async context as it loads, before it queues anything", async (t) => {
  const probe = `
    import { createRequire } from 'node:module';
    const frame = createRequire(import.meta.url)('internal/async_context_frame');
    const before = Object.hasOwn(frame, 'current');
    process.argv = [process.execPath, 'berth', 'version'];
    await import(${JSON.stringify(pathToFileURL(CLI).href)});
    const settled = Object.hasOwn(frame, 'current');
    console.log(JSON.stringify({ before, settled, enabled: frame.enabled }));
  `;
  const { stdout } = await run(process.execPath, ['--expose-internals', '--no-warnings', '--input-type=module', '-e', probe]);
  const lines = stdout.trim().split('\n');
  t.match(lines[0], /^berth \d/, 'the entry module ran (berth version)');
  const seen = JSON.parse(lines.at(-1)!) as { before: boolean; settled: boolean; enabled: boolean };
  t.equal(seen.before, false, 'not settled before berth loads (else this test proves nothing)');
  if (!seen.enabled) {
    // Node 22: AsyncContextFrame is off unless asked for, and nothing is swapped in.
    t.equal(seen.settled, false, 'AsyncContextFrame off: nothing put in place');
    return;
  }
  t.equal(seen.settled, true, "the active functions are in place once berth's entry module has run");
});
