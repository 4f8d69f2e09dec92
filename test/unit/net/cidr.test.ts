import t from 'tap';
import { addressSet, normalizeAddress, parseCidr } from '../../../src/net/cidr.js';

t.test('membership', async (t) => {
  const set = addressSet(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1']);
  const cases: [string | undefined, boolean][] = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['::ffff:10.1.2.3', true],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['fd12::1', true],
    ['fe80::1', false],
    ['::1', true],
    ['not-an-ip', false],
    ['', false],
    [undefined, false],
  ];
  for (const [address, expected] of cases) t.equal(set.has(address), expected, String(address));
  t.equal(addressSet([]).has('127.0.0.1'), false, 'an empty set trusts no one');
});

t.test('parse errors say what was expected', async (t) => {
  for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'example.com', '10.0.0.0/8/8', '10.0.0.0/x', '']) {
    t.throws(() => parseCidr(bad), /CIDR|prefix/, bad);
  }
  t.same(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  t.same(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
});

t.test('IPv4-mapped IPv6 addresses normalize to IPv4', async (t) => {
  t.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(normalizeAddress('::1'), '::1');
});
