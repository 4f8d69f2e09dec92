import t from 'tap';
import { parseProxyHeader, startsLikeProxyHeader } from '../../../src/net/proxyProtocol.js';

const v2 = (command: number, family: number, body: Buffer): Buffer => {
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20 | command, family, 0, 0]);
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
};
const TLS_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);

t.test('v1', async (t) => {
  t.same(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n\x16\x03')), { source: { address: '192.0.2.7', port: 51000 }, length: 45 });
  t.same(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n')), { source: { address: '2001:db8::7', port: 51000 }, length: 46 });
  t.same(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { source: undefined, length: 15 });
  t.equal(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.7')), undefined, 'incomplete: wait for more');
  t.equal(parseProxyHeader(Buffer.from('PRO')), undefined);
  for (const bad of ['PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n', 'PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n', 'PROXY TCP4 192.0.2.7 198.51.100.1 70000 443\r\n', 'PROXY TCP5 a b 1 2\r\n', `PROXY TCP4 ${'1'.repeat(120)}`]) {
    t.throws(() => parseProxyHeader(Buffer.from(bad)), { name: 'ProxyProtocolError' }, JSON.stringify(bad));
  }
});

t.test('v2', async (t) => {
  const v4 = Buffer.from([192, 0, 2, 7, 198, 51, 100, 1, 0xc7, 0x38, 0x01, 0xbb]);
  t.same(parseProxyHeader(Buffer.concat([v2(1, 0x11, v4), TLS_HELLO])), { source: { address: '192.0.2.7', port: 51000 }, length: 28 });
  const v6 = Buffer.alloc(36);
  Buffer.from('20010db8000000000000000000000007', 'hex').copy(v6, 0);
  v6.writeUInt16BE(51000, 32);
  t.same(parseProxyHeader(v2(1, 0x21, v6)), { source: { address: '2001:db8::7', port: 51000 }, length: 52 });
  t.same(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { source: undefined, length: 16 }, 'LOCAL: the balancer itself');
  const withTlvs = v2(1, 0x11, Buffer.concat([v4, Buffer.from([0x04, 0x00, 0x01, 0x00])]));
  t.same(parseProxyHeader(withTlvs), { source: { address: '192.0.2.7', port: 51000 }, length: 32 }, 'TLVs are skipped');
  t.equal(parseProxyHeader(v2(1, 0x11, v4).subarray(0, 20)), undefined, 'incomplete: wait for more');
  t.throws(() => parseProxyHeader(v2(1, 0x11, v4.subarray(0, 6))), { name: 'ProxyProtocolError' }, 'short addresses');
  t.throws(() => parseProxyHeader(v2(2, 0x11, v4)), { name: 'ProxyProtocolError' }, 'unknown command');
  const badVersion = v2(1, 0x11, v4);
  badVersion[12] = 0x11;
  t.throws(() => parseProxyHeader(badVersion), { name: 'ProxyProtocolError' }, 'version 1 in a v2 header');
});

t.test('telling a header from a TLS handshake', async (t) => {
  t.notOk(startsLikeProxyHeader(TLS_HELLO));
  t.ok(startsLikeProxyHeader(Buffer.from('PROXY ')));
  t.ok(startsLikeProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d])));
  t.throws(() => parseProxyHeader(TLS_HELLO), { name: 'ProxyProtocolError' });
});
