import t from 'tap';
import { rewriteChallenge } from '../../../src/proxy/response/realm.js';

const view = { upstream: new URL('http://core:8080'), publicOrigin: 'https://harbor.example.com' };

const cases: [name: string, input: string, expected: string][] = [
  ['realm on the upstream', 'Bearer realm="http://core:8080/service/token",service="harbor-registry"', 'Bearer realm="https://harbor.example.com/service/token",service="harbor-registry"'],
  ['realm on the public host over http', 'Bearer realm="http://harbor.example.com/service/token",service="harbor-registry"', 'Bearer realm="https://harbor.example.com/service/token",service="harbor-registry"'],
  ['realm already right', 'Bearer realm="https://harbor.example.com/service/token",service="harbor-registry"', 'Bearer realm="https://harbor.example.com/service/token",service="harbor-registry"'],
  ['external token service', 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"', 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'],
  ['unquoted realm', 'Bearer realm=http://core:8080/token,service=x', 'Bearer realm="https://harbor.example.com/token",service=x'],
  ['REALM in capitals, spaces', 'Bearer REALM = "http://core:8080/t", scope="repository:a:pull"', 'Bearer REALM = "https://harbor.example.com/t", scope="repository:a:pull"'],
  ['scope and service untouched even if they hold URLs', 'Bearer realm="http://core:8080/t",service="http://core:8080"', 'Bearer realm="https://harbor.example.com/t",service="http://core:8080"'],
  ['Basic challenge', 'Basic realm="Registry Realm"', 'Basic realm="Registry Realm"'],
  ['two challenges', 'Basic realm="x", Bearer realm="http://core:8080/t"', 'Basic realm="x", Bearer realm="https://harbor.example.com/t"'],
  ['empty', '', ''],
  ['realm= inside another quoted parameter', 'Bearer error="see realm=http://core:8080/x",realm="http://core:8080/t"', 'Bearer error="see realm=http://core:8080/x",realm="https://harbor.example.com/t"'],
  ['realm= inside a quoted service only', 'Bearer service="a,realm=http://core:8080/t",realm="https://auth.example.com/t"', 'Bearer service="a,realm=http://core:8080/t",realm="https://auth.example.com/t"'],
  ['an escaped quote in a parameter', 'Bearer error_description="a \\" realm=http://core:8080/t",realm=http://core:8080/t', 'Bearer error_description="a \\" realm=http://core:8080/t",realm="https://harbor.example.com/t"'],
  ['token68', 'Negotiate YWJj==, Bearer realm="http://core:8080/t"', 'Negotiate YWJj==, Bearer realm="https://harbor.example.com/t"'],
  ['unterminated quote: left alone', 'Bearer realm="http://core:8080/t', 'Bearer realm="http://core:8080/t'],
];

for (const [name, input, expected] of cases) t.equal(rewriteChallenge(input, view), expected, name);
