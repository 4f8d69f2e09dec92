import t from 'tap';
import { ProxyError } from '../../../src/proxy/errors.js';
import { requestHead } from '../../../src/proxy/transport.js';

t.test('the request head for the upstream: the headers as the passes left them, one line per value', async (t) => {
  const head = requestHead('PUT', '/v2/a/blobs/uploads/1?_state=x%3D&digest=sha256%3Aab', { host: 'registry.example.com', 'x-list': ['a', 'b'], 'content-length': '5', gone: undefined }, false);
  t.equal(
    head,
    'PUT /v2/a/blobs/uploads/1?_state=x%3D&digest=sha256%3Aab HTTP/1.1\r\nconnection: keep-alive\r\nhost: registry.example.com\r\nx-list: a\r\nx-list: b\r\ncontent-length: 5\r\n\r\n',
  );
  t.match(requestHead('PATCH', '/v2/a/blobs/uploads/1', { host: 'h' }, true), /\r\ntransfer-encoding: chunked\r\n\r\n$/, 'a body berth re-chunks says so');
});

t.test('a line break in a value, or a blank in the target, is never written', async (t) => {
  t.throws(() => requestHead('GET', '/v2/', { host: 'h', 'x-bad': 'a\r\nGET /smuggled HTTP/1.1' }, false), ProxyError);
  t.throws(() => requestHead('GET', '/v2/', { host: 'h', 'x-bad': ['ok', 'a\nb'] }, false), ProxyError);
  t.throws(() => requestHead('GET', '/v2/', { host: 'h', 'x-bad': 'a\0b' }, false), ProxyError);
  t.throws(() => requestHead('GET', '/v2/ HTTP/1.1\r\nX: y', { host: 'h' }, false), ProxyError);
  t.throws(() => requestHead('GET', '', { host: 'h' }, false), ProxyError);
});
