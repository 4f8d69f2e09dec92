import t from 'tap';
import { redactPath } from '../../../src/observe/accessLog.js';

const cases: [string, string][] = [
  ['/v2/a/blobs/uploads/u?_state=abc%2B%3D&digest=sha256%3Ax', '/v2/a/blobs/uploads/u?_state=REDACTED&digest=sha256%3Ax'],
  ['/v2/a/blobs/uploads/u?digest=sha256%3Ax&_state=abc', '/v2/a/blobs/uploads/u?digest=sha256%3Ax&_state=REDACTED'],
  ['/v2/a/blobs/uploads/u?x_state=keep', '/v2/a/blobs/uploads/u?x_state=keep'],
  ['/v2/a/manifests/latest', '/v2/a/manifests/latest'],
  ['/v2/?_state=a&_state=b', '/v2/?_state=REDACTED&_state=REDACTED'],
  ['/v2/a/blobs/uploads/u?%5Fstate=secret&digest=x', '/v2/a/blobs/uploads/u?%5Fstate=REDACTED&digest=x'],
  ['/v2/a/blobs/uploads/u?%5fst%61te=secret', '/v2/a/blobs/uploads/u?%5fst%61te=REDACTED'],
  ['/v2/a/blobs/uploads/u?_state=a%ZZ&%E0=b', '/v2/a/blobs/uploads/u?_state=REDACTED&%E0=b'],
];
for (const [input, expected] of cases) t.equal(redactPath(input), expected, input);
