import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('a token realm on the upstream or on the public host over http is pointed at the public https origin', async (t) => {
  let challenge = '';
  const up = await startUpstream(t, (_req, res) => {
    res.setHeader('WWW-Authenticate', challenge);
    res.setHeader('Docker-Distribution-Api-Version', 'registry/2.0');
    res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const pub = tb.origin;
  const cases: [sent: string, expected: string][] = [
    [
      `Bearer realm="http://127.0.0.1:${up.port}/service/token",service="harbor-registry",scope="repository:lib/app:pull,push"`,
      `Bearer realm="${pub}/service/token",service="harbor-registry",scope="repository:lib/app:pull,push"`,
    ],
    [
      // Harbor without external_url: scheme http, host from the request's Host.
      `Bearer realm="http://localhost:${tb.port}/service/token",service="harbor-registry"`,
      `Bearer realm="${pub}/service/token",service="harbor-registry"`,
    ],
    [`Bearer realm=http://127.0.0.1:${up.port}/token,service=reg`, `Bearer realm="${pub}/token",service=reg`],
    ['Bearer realm="https://auth.example.com/token",service="registry.example.com"', 'Bearer realm="https://auth.example.com/token",service="registry.example.com"'],
    ['Basic realm="Registry Realm"', 'Basic realm="Registry Realm"'],
  ];
  for (const [sent, expected] of cases) {
    challenge = sent;
    const answer = await ask(tb, { path: '/v2/' });
    t.equal(answer.status, 401);
    t.equal(answer.headers['www-authenticate'], expected, sent);
    t.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0', 'the registry header passes through');
  }
});
