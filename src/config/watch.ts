import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export interface FileWatch {
  close(): void;
}

/**
 * Calls `changed` a moment (`settleMs`) after the last change to anything in the
 * directories that hold `files`. The directories, not the files: tools that replace a file
 * by renaming another over it, and Kubernetes volumes that swap a `..data` symlink, leave a
 * watch on the file itself following the old inode. A directory that cannot be watched is
 * logged at warn (`what` names the files), and SIGHUP still reloads; this never throws.
 */
export function watchFiles(files: readonly string[], options: { readonly what: string; readonly logger: Logger; readonly settleMs?: number }, changed: () => void): FileWatch {
  const { logger, what } = options;
  let timer: NodeJS.Timeout | undefined;
  const settle = (): void => {
    clearTimeout(timer);
    timer = setTimeout(changed, options.settleMs ?? 250);
    timer.unref();
  };
  const watchers: fs.FSWatcher[] = [];
  for (const dir of new Set(files.map((file) => path.dirname(file)))) {
    try {
      const watcher = fs.watch(dir, { persistent: false }, settle);
      watcher.on('error', (err) => logger.warn({ dir, error: err.message }, `${what} directory watch failed; SIGHUP still reloads`));
      watchers.push(watcher);
    } catch (err) {
      logger.warn({ dir, error: (err as Error).message }, `cannot watch the ${what} directory; SIGHUP still reloads`);
    }
  }
  return {
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/**
 * Calls `changed` when the config file's text has changed since it was last seen: a change
 * to another file in its directory (a certificate beside it) reloads nothing.
 */
export function watchConfigFile(file: string, logger: Logger, changed: () => void): FileWatch {
  const read = (): string | undefined => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  };
  let seen = read();
  return watchFiles([file], { what: 'config file', logger }, () => {
    const text = read();
    if (text === seen) return;
    seen = text;
    changed();
  });
}
