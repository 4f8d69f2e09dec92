import type http from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import type { Exchanged } from '../../../src/observe/accessLog.js';
import { InFlight, type InFlightEntry } from '../../../src/observe/inFlight.js';

// InFlight is a list threaded through its entries (a Map carried every request in flight
// into V8's old generation). Checked against the Map it replaced: the same requests, in the
// same order (oldest first), whatever the order they finish in, and each finishes once.

function request(n: number): { req: http.IncomingMessage; res: http.ServerResponse; record: Exchanged } {
  const req = { method: 'GET', url: `/v2/r${n}/blobs/uploads/u?_state=secret${n}` } as unknown as http.IncomingMessage;
  const res = { n } as unknown as http.ServerResponse;
  const record: Exchanged = { started: performance.now(), bytesIn: n, bytesOut: 2 * n, client: `10.0.0.${n % 256}`, error: undefined };
  return { req, res, record };
}

t.test('the same requests as a Map, oldest first, whatever order they finish in', async () => {
  // Each step starts a request (true) or finishes the nth one still in flight (a number).
  const steps = fc.array(fc.oneof(fc.constant<true>(true), fc.nat()), { maxLength: 200 });
  fc.assert(
    fc.property(steps, (script) => {
      const inFlight = new InFlight();
      const model = new Map<number, ReturnType<typeof request>>();
      const handles = new Map<number, InFlightEntry>();
      const finished: InFlightEntry[] = [];
      let heard = 0;
      inFlight.onDone(() => heard++);
      let next = 0;
      for (const step of script) {
        if (step === true) {
          const r = request(next);
          model.set(next, r);
          handles.set(next, inFlight.add(r.req, r.res, r.record));
          next++;
        } else if (model.size > 0) {
          const key = [...model.keys()][step % model.size]!;
          model.delete(key);
          finished.push(handles.get(key)!);
          inFlight.done(handles.get(key)!);
          handles.delete(key);
        }
        if (inFlight.size !== model.size) return false;
        const expected = [...model.values()];
        if (inFlight.responses().some((res, i) => res !== expected[i]!.res) || inFlight.responses().length !== expected.length) return false;
        const described = inFlight.describe(3);
        if (described.length !== Math.min(3, expected.length)) return false;
        if (described.some((d, i) => d.bytesIn !== expected[i]!.record.bytesIn || String(d.path).includes('secret'))) return false;
      }
      // Finishing again changes nothing and tells no one.
      const before = heard;
      for (const entry of finished) inFlight.done(entry);
      return heard === before && heard === finished.length && inFlight.size === model.size;
    }),
    { numRuns: 300 },
  );
});

t.test('a drain waiting on the last request hears it, and nothing is left', async (t) => {
  const inFlight = new InFlight();
  const a = request(1);
  const b = request(2);
  const ha = inFlight.add(a.req, a.res, a.record);
  const hb = inFlight.add(b.req, b.res, b.record);
  const sizes: number[] = [];
  inFlight.onDone(() => sizes.push(inFlight.size));
  inFlight.done(hb);
  inFlight.done(ha);
  inFlight.done(ha);
  t.same(sizes, [1, 0]);
  t.same(inFlight.responses(), []);
  t.same(inFlight.describe(), []);
});
