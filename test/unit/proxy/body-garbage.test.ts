import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { BodyGarbage } from '../../../src/proxy/bodyGarbage.js';

t.test('one collection per `every` bytes relayed, however the bytes are chunked', async (t) => {
  let collections = 0;
  const garbage = new BodyGarbage(1000, () => collections++);
  for (let i = 0; i < 99; i++) garbage.relayed(10);
  t.equal(collections, 0, '990 bytes: none yet');
  garbage.relayed(10);
  t.equal(collections, 1, 'the 1000th byte: one');
  garbage.relayed(5000);
  t.equal(collections, 2, 'one large chunk: one, not five');
  for (let i = 0; i < 999; i++) garbage.relayed(1);
  t.equal(collections, 2, 'the count starts again after a collection');
  garbage.relayed(1);
  t.equal(collections, 3);
});

t.test("the default collection frees chunks no longer referenced, and puts no gc on berth's global", async (t) => {
  // Chunks the size of a body read, each with its own memory outside V8's heap, as a
  // socket's are; dropped at once, with hardly any JavaScript allocation after them. (32
  // MiB: V8 collects by itself once external memory has grown by 64 MiB.)
  const before = process.memoryUsage().arrayBuffers;
  let chunks: Buffer[] | undefined = Array.from({ length: 512 }, () => Buffer.allocUnsafeSlow(64 * 1024));
  t.ok(process.memoryUsage().arrayBuffers - before >= 30 * 1024 * 1024, '32 MiB of chunks held');
  chunks = undefined;
  const garbage = new BodyGarbage(1);
  garbage.relayed(1);
  // V8 may release the memory on a background thread just after the collection.
  let left = Infinity;
  for (let i = 0; i < 50; i++) {
    left = process.memoryUsage().arrayBuffers - before;
    if (left < 8 * 1024 * 1024) break;
    await sleep(20);
  }
  t.ok(left < 8 * 1024 * 1024, `the chunks were freed (${Math.round(left / 1024 / 1024)} MiB left)`);
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'no global gc');
  t.equal(chunks, undefined);
});
