import t from 'tap';
import fc from 'fast-check';
import { isNamed, namedAt } from '../../../src/proxy/headerName.js';

t.test('isNamed: a name in any case, nothing else', async (t) => {
  t.ok(isNamed('Content-Type', 'content-type'));
  t.ok(isNamed('WWW-AUTHENTICATE', 'www-authenticate'));
  t.ok(isNamed('location', 'location'));
  t.notOk(isNamed('Locations', 'location'));
  t.notOk(isNamed('Locatio', 'location'));
  t.notOk(isNamed('Locatioñ', 'location'));
  // '[' is 'Z' + 1 and '{' is 'z' + 1; '@' lies just below 'A'.
  t.notOk(isNamed('[', '{'));
  t.notOk(isNamed('@', '`'));
  // Latin1 letters lowercase too (À–Þ by 0x20), but × is not ÷'s capital.
  t.ok(isNamed('Ë', 'ë'));
  t.ok(isNamed('X-ÀÞ', 'x-àþ'));
  t.notOk(isNamed('×', '÷'));
  t.notOk(isNamed('ë', 'Ë'));
});

t.test('isNamed answers as name.toLowerCase() === lower, for every latin1 name', async (t) => {
  // Lowercased latin1 names too: a Connection header may name any token (x-ëa, ë).
  const lowers = ['content-type', 'location', 'www-authenticate', 'connection', 'strict-transport-security', 'server', 'x', 'a-z', 'x-ëa', 'ë', 'þ÷ß'];
  // A lowercase name recased letter by letter (any latin1 character now and then), or any latin1 text.
  const recased = fc.constantFrom(...lowers).chain((lower) =>
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: lower.length, maxLength: lower.length }).map((how) =>
      [...lower].map((c, i) => (how[i] === 1 ? c.toUpperCase() : how[i] === 2 ? String.fromCharCode(c.charCodeAt(0) ^ 0x20) : how[i] === 3 ? String.fromCharCode(c.charCodeAt(0) + 0x80) : c)).join(''),
    ),
  );
  const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((code) => String.fromCharCode(code)), maxLength: 26 });
  fc.assert(
    fc.property(fc.oneof(recased, latin1), fc.constantFrom(...lowers), (name, lower) => isNamed(name, lower) === (name.toLowerCase() === lower)),
    { numRuns: 20_000 },
  );
  t.pass();
});

t.test('namedAt answers as name.toLowerCase().startsWith(lower, at), for every latin1 name', async (t) => {
  const lowers = ['proxy-', 'localhost', '.localhost', 'x', 'a-z', 'ë', 'x-àþ÷'];
  const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((code) => String.fromCharCode(code)), maxLength: 8 });
  // Text around a lowercase name recased at random, or any latin1 text.
  const around = fc.tuple(latin1, fc.constantFrom(...lowers), fc.array(fc.boolean(), { maxLength: 10 }), latin1).map(([before, lower, upper, after]) => before + [...lower].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('') + after);
  fc.assert(
    fc.property(fc.oneof(around, latin1), fc.constantFrom(...lowers), fc.nat(20), (name, lower, at) => {
      if (at + lower.length > name.length) return true; // namedAt asks for a name long enough
      return namedAt(name, lower, at) === name.toLowerCase().startsWith(lower, at);
    }),
    { numRuns: 20_000 },
  );
  t.pass();
});
