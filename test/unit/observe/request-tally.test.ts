import fc from 'fast-check';
import client from 'prom-client';
import t from 'tap';
import { RequestTally } from '../../../src/observe/metrics.js';
import { OPERATIONS } from '../../../src/observe/operation.js';

t.test('counted requests reach prom-client as direct inc() calls would, scrape after scrape', async (t) => {
  const request = fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'),
    operation: fc.constantFrom(...OPERATIONS),
    status: fc.oneof(fc.constantFrom(200, 201, 202, 204, 307, 401, 404, 416, 499, 502), fc.integer({ min: 100, max: 999 })),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(request, { maxLength: 40 }), { minLength: 1, maxLength: 4 }), async (batches) => {
      const labelNames = ['method', 'status_class', 'operation'] as const;
      const direct = new client.Registry();
      const reference = new client.Counter({ name: 'berth_requests_total', help: 'h', labelNames, registers: [direct] });
      const tallied = new client.Registry();
      const tally = new RequestTally();
      new client.Counter({
        name: 'berth_requests_total',
        help: 'h',
        labelNames,
        registers: [tallied],
        collect() {
          tally.handOver((labels, count) => this.inc(labels, count));
        },
      });
      // Scraped between batches: each hands over only what came since the one before.
      for (const batch of batches) {
        for (const { method, operation, status } of batch) {
          reference.inc({ method, status_class: `${Math.floor(status / 100)}xx`, operation });
          tally.count(method, operation, status);
        }
        const [expected, got] = [await direct.getMetricsAsJSON(), await tallied.getMetricsAsJSON()];
        const sorted = (values: client.MetricValue<string>[]) => [...values].sort((a, b) => JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)));
        const normal = (values: client.MetricValue<string>[]) => sorted(values).map(({ labels, value }) => ({ labels: { method: labels.method, status_class: labels.status_class, operation: labels.operation }, value }));
        if (JSON.stringify(normal(got[0]!.values)) !== JSON.stringify(normal(expected[0]!.values))) {
          throw new Error(`series differ:\n${JSON.stringify(normal(got[0]!.values))}\n${JSON.stringify(normal(expected[0]!.values))}`);
        }
      }
      t.pass();
    }),
    { numRuns: 100 },
  );
});
