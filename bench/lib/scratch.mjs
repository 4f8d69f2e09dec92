import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A bench script's scratch directory and the child processes it starts, both gone when the
 * script ends, by a signal too: a signal would otherwise end it without 'exit', leaving
 * berth, nginx or the registry running. `signal` is what the children get: SIGTERM lets
 * nginx's master and berth's primary end their own workers; SIGKILL when nothing must drain.
 */
export function scratch(prefix, signal = 'SIGTERM') {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const children = [];
  process.on('exit', () => {
    for (const child of children) child.kill(signal);
    fs.rmSync(work, { recursive: true, force: true });
  });
  for (const ending of ['SIGINT', 'SIGTERM']) process.on(ending, () => process.exit(130));
  return { work, children };
}
