// Preloaded into berth's processes by the soak (NODE_OPTIONS=--import=…, with
// SOAK_HEAP_DIR set): on SIGUSR2 the process collects its whole heap and writes what is
// still alive to SOAK_HEAP_DIR/heap.<pid>.json. A process keeps the memory it grew to (V8
// its heap, the C allocator what it was given), so its resident memory after a load says
// how far it grew, not what it still holds; what survives a full collection does.
// A process started without --expose-gc (berth's primary under the soak) reports gc: false.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.env.SOAK_HEAP_DIR;
if (dir) {
  process.on('SIGUSR2', () => {
    const collected = typeof globalThis.gc === 'function';
    if (collected) globalThis.gc();
    const m = process.memoryUsage();
    const report = { pid: process.pid, gc: collected, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss };
    const file = path.join(dir, `heap.${process.pid}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(report));
    fs.renameSync(`${file}.tmp`, file);
  });
}
