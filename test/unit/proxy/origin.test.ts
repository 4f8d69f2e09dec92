import t from 'tap';
import { rewriteToPublic } from '../../../src/proxy/response/origin.js';

const view = { upstream: new URL('http://registry:5000'), publicOrigin: 'https://reg.example.com:8443' };
const state = '?_state=aGk%2Bd29%2Fcmxk%3D%3D&digest=sha256%3Aabc';

const cases: [name: string, input: string, expected: string | undefined][] = [
  ['upstream origin, upload URL', `http://registry:5000/v2/a/blobs/uploads/u${state}`, `https://reg.example.com:8443/v2/a/blobs/uploads/u${state}`],
  ['upstream host in capitals', `http://REGISTRY:5000/v2/a`, 'https://reg.example.com:8443/v2/a'],
  ['upstream origin, no path', 'http://registry:5000', 'https://reg.example.com:8443'],
  ['upstream origin, query only', 'http://registry:5000?x=%2B', 'https://reg.example.com:8443?x=%2B'],
  ['scheme-relative on the upstream', '//registry:5000/v2/a', 'https://reg.example.com:8443/v2/a'],
  ['public host over http, same port', `http://reg.example.com:8443/v2/a${state}`, `https://reg.example.com:8443/v2/a${state}`],
  ['public host over http, no port', 'http://reg.example.com/v2/a', 'https://reg.example.com:8443/v2/a'],
  ['public host over http, explicit :80', 'http://reg.example.com:80/v2/a', 'https://reg.example.com:8443/v2/a'],
  ['public host over http, another port', 'http://reg.example.com:9000/v2/a', undefined],
  ['public host over https', 'https://reg.example.com:8443/v2/a', undefined],
  ['upstream host, other port', 'http://registry:5001/v2/a', undefined],
  ['upstream authority over https (a registry told X-Forwarded-Proto: https)', `https://registry:5000/v2/a${state}`, `https://reg.example.com:8443/v2/a${state}`],
  ['upstream host over https, another port', 'https://registry:5001/v2/a', undefined],
  ['upstream host over https, no port', 'https://registry/v2/a', undefined],
  ['object storage', 'https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=a%2Bb', undefined],
  ['relative path', `/v2/a/blobs/uploads/u${state}`, undefined],
  ['relative without slash', 'uploads/u', undefined],
  ['credentials in the URL', 'http://user:pw@registry:5000/v2/a', undefined],
  ['not a URL', 'mailto:ops@example.com', undefined],
  ['empty', '', undefined],
  ['path with spaces and percent', 'http://registry:5000/v2/a%20b/c d?e=%', 'https://reg.example.com:8443/v2/a%20b/c d?e=%'],
  ['fragment kept', 'http://registry:5000/v2/a#frag', 'https://reg.example.com:8443/v2/a#frag'],
];

for (const [name, input, expected] of cases) {
  t.equal(rewriteToPublic(input, view), expected, name);
}

t.test('default ports compare equal to no port', async (t) => {
  const v = { upstream: new URL('http://harbor'), publicOrigin: 'https://harbor.example.com' };
  t.equal(rewriteToPublic('http://harbor:80/v2/x', v), 'https://harbor.example.com/v2/x');
  t.equal(rewriteToPublic('http://harbor/v2/x', v), 'https://harbor.example.com/v2/x');
  t.equal(rewriteToPublic('http://harbor.example.com/service/token', v), 'https://harbor.example.com/service/token');
});

t.test('IPv6 upstream', async (t) => {
  const v = { upstream: new URL('http://[::1]:5000'), publicOrigin: 'https://localhost:8443' };
  t.equal(rewriteToPublic('http://[::1]:5000/v2/x', v), 'https://localhost:8443/v2/x');
  t.equal(rewriteToPublic('http://[::2]:5000/v2/x', v), undefined);
});

t.test('no public origin known: nothing is rewritten', async (t) => {
  t.equal(rewriteToPublic('http://registry:5000/v2/a', { upstream: view.upstream, publicOrigin: '' }), undefined);
});
