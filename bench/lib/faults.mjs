// Faults for the fault soak (bench/soak.mjs with SOAK_FAULTS=1): each is something that
// happens to a registry front in production, injected while real clients push and pull.
import fs from 'node:fs';
import path from 'node:path';

/**
 * Runs `faults` in turn, one every `everyMs`, until stop() is called; counts each kind.
 * A fault that throws is counted as failed to inject (and reported), not fatal.
 */
export function injectFaults(faults, everyMs, log) {
  const injected = Object.fromEntries(faults.map((f) => [f.name, 0]));
  const failed = [];
  let stopped = false;
  let timer;
  let wake = () => {};
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      await new Promise((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, everyMs);
      });
      if (stopped) break;
      const fault = faults[i % faults.length];
      try {
        await fault.run();
        injected[fault.name]++;
        log(`fault: ${fault.name}`);
      } catch (err) {
        failed.push(`${fault.name}: ${err.message}`);
      }
    }
  })();
  return {
    injected,
    failed,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wake(); // the pause ends now, and with it the loop
      await done;
    },
  };
}

/** Writes a file the way a certificate renewal does: a new file renamed over the old one. */
export function replaceFile(file, content, mode) {
  const next = path.join(path.dirname(file), `.${path.basename(file)}.new`);
  fs.writeFileSync(next, content, mode === undefined ? undefined : { mode });
  fs.renameSync(next, file);
}

/** Retries `attempt` up to `times` times, `pauseMs` apart, as a CI job retries a failed push; resolves with the tries it took. */
export async function withRetries(times, pauseMs, attempt) {
  for (let tries = 1; ; tries++) {
    try {
      await attempt();
      return tries;
    } catch (err) {
      if (tries >= times) throw err;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}
