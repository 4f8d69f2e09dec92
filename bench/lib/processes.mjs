import fs from 'node:fs';

/**
 * A front's processes: `root` and its children (a primary's workers), read from Linux's /proc.
 * A process's command name may hold spaces and parentheses, so its parent is read after the last ')'.
 */
export function processTree(root) {
  const pids = [root];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === root) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
