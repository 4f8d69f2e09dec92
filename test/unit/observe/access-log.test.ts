import t from 'tap';
import { redactPath } from '../../../src/observe/accessLog.js';

const cases: [string, string][] = [
  ['/v2/a/blobs/uploads/u?_state=abc%2B%3D&digest=sha256%3Ax', '/v2/a/blobs/uploads/u?_state=REDACTED&digest=sha256%3Ax'],
  ['/v2/a/blobs/uploads/u?digest=sha256%3Ax&_state=abc', '/v2/a/blobs/uploads/u?digest=sha256%3Ax&_state=REDACTED'],
  ['/v2/a/blobs/uploads/u?x_state=keep', '/v2/a/blobs/uploads/u?x_state=keep'],
  ['/v2/a/manifests/latest', '/v2/a/manifests/latest'],
  ['/v2/?_state=a&_state=b', '/v2/?_state=REDACTED&_state=REDACTED'],
];
for (const [input, expected] of cases) t.equal(redactPath(input), expected, input);
