import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Keeps the body chunks berth has relayed from piling up in memory.
 *
 * A body arrives in Buffers of 16–64 KiB whose memory lies outside V8's heap. V8 frees them
 * when it collects its young generation, which it does after about one semi-space of
 * JavaScript allocation (4 MiB: `--max-semi-space-size=4`); one chunk costs only a few
 * hundred bytes of that. So between two collections tens of MiB of chunks already written
 * on wait to be freed: 36–63 MiB of them in a worker relaying four 1 GiB uploads (measured
 * with process.memoryUsage().arrayBuffers; README, "Performance"). A young-generation
 * collection after every `every` bytes relayed bounds that to a few MiB, and costs less
 * CPU than it saves: memory that is freed soon is reused while still in the caches (1.7–2.0
 * against 2.2–2.6 s of CPU per GiB uploaded, interleaved rounds).
 */
export class BodyGarbage {
  #relayed = 0;

  /**
   * @param every bytes relayed between two young-generation collections
   * @param collect the collection; none where V8 offers none (the pacing is then off)
   */
  constructor(
    private readonly every: number,
    private readonly collect: (() => void) | undefined = youngCollection(),
  ) {}

  /** `bytes` of body were relayed (either way). */
  relayed(bytes: number): void {
    this.#relayed += bytes;
    if (this.#relayed < this.every) return;
    this.#relayed = 0;
    this.collect?.();
  }
}

/** Bytes relayed between two collections: measured, 4 and 8 MiB cost the same CPU. */
export const COLLECT_EVERY = 8 * 1024 * 1024;

/**
 * V8's young-generation (minor) collection, run synchronously: the `gc` that --expose-gc
 * puts on the global (berth's processes start with it: the `start` script, the image's
 * entrypoint, WORKER_V8_FLAGS). Started without it, berth still reaches the function: V8
 * offers it to a context made once the flag is set (setting it now adds no `gc` to the
 * contexts that exist); the new context is only a way to reach it.
 */
function youngCollection(): (() => void) | undefined {
  let gc: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') {
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as unknown;
    } catch {
      gc = undefined;
    }
  }
  return typeof gc === 'function' ? () => (gc as (options: { type: 'minor' }) => void)({ type: 'minor' }) : undefined;
}
