import t from 'tap';
import { FIXED_NAMES, connectionTokens, isFixedHopByHopName } from '../../../src/proxy/hopByHop.js';
import { stripResponseHopByHop } from '../../../src/proxy/response/hopByHop.js';

t.test('response hop-by-hop headers are removed, repeated end-to-end headers kept', async (t) => {
  const headers = [
    ['Connection', 'X-Internal'],
    ['Connection', 'keep-alive'],
    ['X-Internal', '1'],
    ['Keep-Alive', 'timeout=5'],
    ['Transfer-Encoding', 'chunked'],
    ['Proxy-Authenticate', 'Basic'],
    ['Content-Length', '10'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Docker-Upload-UUID', 'u'],
  ].flat();
  const ctx = { status: 200, headers, upstream: new URL('http://u'), publicOrigin: '' };
  stripResponseHopByHop(ctx);
  t.same(ctx.headers, [
    ['Content-Length', '10'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Docker-Upload-UUID', 'u'],
  ].flat());
});

t.test('the fixed names found by length are the fixed list, in any case, and only those', async (t) => {
  // isFixedHopByHopName spells the list out by length; a name added to the list alone fails here.
  for (const name of FIXED_NAMES) {
    const mixed = [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
    for (const spelled of [name, name.toUpperCase(), mixed]) t.ok(isFixedHopByHopName(spelled), spelled);
    // One letter more, or one less, is another name.
    if (!name.startsWith('proxy-')) {
      t.notOk(isFixedHopByHopName(`${name}s`), `${name}s`);
      t.notOk(isFixedHopByHopName(name.slice(1)), name.slice(1));
    }
  }
  for (const name of ['Proxy-Authenticate', 'Proxy-X', 'PROXY-abcd', 'proxy-transfer-x']) t.ok(isFixedHopByHopName(name), name);
  for (const name of ['Content-Type', 'Date', 'Tee', 'T', 'Upgrades', 'Proxy', 'Docker-Upload-UUID']) t.notOk(isFixedHopByHopName(name), name);
});

t.test('a header Connection names in a latin1 letter goes too, in either case', async (t) => {
  // Found by the generated test below: Connection lists "Ë" (lowercased "ë"), the header is "Ë".
  const ctx = { status: 200, headers: ['Ë', '1', 'Connection', 'Ë', 'X-Ä', '2', 'Connection', 'x-ä', 'Date', 'd'], upstream: new URL('http://u'), publicOrigin: '' };
  stripResponseHopByHop(ctx);
  t.same(ctx.headers, ['Date', 'd']);
});

t.test('connectionTokens: the names a Connection header lists, lowercased', async (t) => {
  const tokens = (value: string | string[] | undefined): string[] => [...connectionTokens(value)].sort();
  t.same(tokens(undefined), []);
  t.same(tokens(''), []);
  t.same(tokens('keep-alive'), ['keep-alive']);
  t.same(tokens('Keep-Alive'), ['keep-alive']);
  t.same(tokens('Close'), ['close']);
  t.same(tokens('KEEP-ALIVE'), ['keep-alive']);
  t.same(tokens(' X-A ,x-b,, Keep-Alive'), ['keep-alive', 'x-a', 'x-b']);
  t.same(tokens(['close', 'X-Internal']), ['close', 'x-internal']);
  t.equal(connectionTokens('keep-alive'), connectionTokens('keep-alive'), 'the common values are parsed once');
});

t.test('whatever the names, their case and the Connection tokens, what stays is what the plain rule keeps', async (t) => {
  const fc = (await import('fast-check')).default;
  const { FRAMING, isFixedHopByHop } = await import('../../../src/proxy/hopByHop.js');
  const base = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-x', 'content-length', 'content-type', 'host', 'date', 'x-internal', 'close', 'docker-upload-uuid', 'set-cookie', 'p', 'proxy', 'tee', 'x'];
  // Each letter in either case; now and then a latin1 letter that lowercases to another latin1 letter.
  const cased = (name: string) => fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));
  const name = fc.oneof(fc.constantFrom(...base).chain(cased), fc.stringMatching(/^[A-Za-z\xC0-\xDE\xE0-\xFE-]{1,18}$/));
  const header = fc.tuple(name, fc.string({ maxLength: 8 }));
  const connection = fc.array(fc.oneof(fc.constantFrom(...base).chain(cased), fc.stringMatching(/^[A-Za-z\xC0-\xDE-]{1,12}$/)), { maxLength: 4 }).map((tokens) => ['Connection', tokens.join(', ')] as [string, string]);
  fc.assert(
    fc.property(fc.array(fc.oneof(header, connection), { maxLength: 12 }), (list) => {
      const named = connectionTokens(list.filter(([n]) => n.toLowerCase() === 'connection').map(([, v]) => v));
      const expected = list
        .filter(([n]) => {
          const lower = n.toLowerCase();
          return !(isFixedHopByHop(lower) || (named.has(lower) && !FRAMING.has(lower)));
        })
        .flat();
      const ctx = { status: 200, headers: list.flat(), upstream: new URL('http://u'), publicOrigin: '' };
      stripResponseHopByHop(ctx);
      return JSON.stringify(ctx.headers) === JSON.stringify(expected);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});
