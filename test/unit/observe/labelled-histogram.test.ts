import fc from 'fast-check';
import client from 'prom-client';
import t from 'tap';
import { LabelledHistogram } from '../../../src/observe/metrics.js';
import { OPERATIONS } from '../../../src/observe/operation.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400];
const NAME = 'berth_request_duration_seconds';
const HELP = 'Time from the request line to the end of the response, by registry operation.';

/** Durations as berth observes them, with the bucket bounds themselves and values past the last. */
const seconds = fc.oneof(
  fc.double({ min: 0, max: 20_000, noNaN: true }),
  fc.constantFrom(0, ...BUCKETS, 14_400.5, 1e9),
  fc.integer({ min: 0, max: 5000 }).map((ms) => ms / 1000),
);
const observation = fc.record({ operation: fc.constantFrom(...OPERATIONS), seconds });

/** The same observations into prom-client's Histogram and into a LabelledHistogram, each in a registry of its own. */
function both(observations: readonly { operation: string; seconds: number }[]): { reference: client.Registry; labelled: client.Registry } {
  const reference = new client.Registry();
  const histogram = new client.Histogram({ name: NAME, help: HELP, labelNames: ['operation'], buckets: BUCKETS, registers: [reference] });
  const labelled = new client.Registry();
  const ours = new LabelledHistogram(NAME, HELP, 'operation', BUCKETS, labelled);
  for (const { operation, seconds } of observations) {
    histogram.observe({ operation }, seconds);
    ours.observe(operation, seconds);
  }
  return { reference, labelled };
}

t.test("a LabelledHistogram's exposition is prom-client's Histogram's, line for line", async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (observations) => {
      const { reference, labelled } = both(observations);
      const [expected, got] = [await reference.metrics(), await labelled.metrics()];
      if (got !== expected) throw new Error(`exposition differs:\n${got}\n--- prom-client:\n${expected}`);
    }),
    { numRuns: 200 },
  );
  t.pass();
});

t.test("summed across workers, it is what prom-client's cluster aggregation gives for its own Histogram", async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(observation, { maxLength: 30 }), { minLength: 1, maxLength: 3 }), async (workers) => {
      const pairs = workers.map(both);
      const expected = await client.AggregatorRegistry.aggregate(await Promise.all(pairs.map((p) => p.reference.getMetricsAsJSON()))).metrics();
      const got = await client.AggregatorRegistry.aggregate(await Promise.all(pairs.map((p) => p.labelled.getMetricsAsJSON()))).metrics();
      if (got !== expected) throw new Error(`sum differs:\n${got}\n--- prom-client:\n${expected}`);
    }),
    { numRuns: 100 },
  );
  t.pass();
});

t.test('reset empties it, as it does a prom-client metric; a value that is not finite is not counted', async (t) => {
  const registry = new client.Registry();
  const histogram = new LabelledHistogram(NAME, HELP, 'operation', BUCKETS, registry);
  histogram.observe('blob_pull', 0.2);
  histogram.observe('blob_pull', Number.NaN);
  histogram.observe('blob_pull', Number.POSITIVE_INFINITY);
  t.match(await registry.metrics(), /^berth_request_duration_seconds_count\{operation="blob_pull"\} 1$/m);
  t.match(await registry.metrics(), /^berth_request_duration_seconds_bucket\{le="0.25",operation="blob_pull"\} 1$/m);
  t.match(await registry.metrics(), /^berth_request_duration_seconds_bucket\{le="0.1",operation="blob_pull"\} 0$/m);
  registry.resetMetrics();
  t.notMatch(await registry.metrics(), /blob_pull/);
  t.throws(() => new LabelledHistogram(NAME, HELP, 'operation', BUCKETS, registry), /already been registered/, 'one name, one metric, as prom-client says');
});
