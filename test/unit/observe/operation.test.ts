import t from 'tap';
import { operationOf } from '../../../src/observe/operation.js';

t.test('registry operations from method and path', async (t) => {
  const cases: [string, string, string][] = [
    ['POST', '/v2/lib/app/blobs/uploads/', 'blob_upload'],
    ['POST', '/v2/lib/app/blobs/uploads/?mount=sha256:ab&from=other', 'blob_upload'],
    ['PATCH', '/v2/lib/app/blobs/uploads/6f1c?_state=x', 'blob_upload'],
    ['PUT', '/v2/a/b/c/blobs/uploads/6f1c?_state=x&digest=sha256%3Aab', 'blob_upload'],
    ['GET', '/v2/lib/app/blobs/uploads/6f1c', 'blob_upload'],
    ['GET', '/v2/lib/app/blobs/sha256:abc', 'blob_pull'],
    ['HEAD', '/v2/app/blobs/sha256:abc', 'blob_pull'],
    ['DELETE', '/v2/app/blobs/sha256:abc', 'other'],
    ['PUT', '/v2/lib/app/manifests/v1.2', 'manifest_push'],
    ['GET', '/v2/lib/app/manifests/sha256:abc', 'manifest_pull'],
    ['HEAD', '/v2/lib/app/manifests/latest', 'manifest_pull'],
    ['DELETE', '/v2/lib/app/manifests/sha256:abc', 'other'],
    ['GET', '/service/token?service=harbor-registry&scope=repository:lib/app:pull', 'token'],
    ['GET', '/token?scope=x', 'token'],
    ['GET', '/v2/', 'other'],
    ['GET', '/v2/_catalog', 'other'],
    ['GET', '/v2/lib/app/tags/list', 'other'],
    // A repository whose name contains "blobs" or "manifests" is still read from the end.
    ['GET', '/v2/blobs/manifests/blobs/sha256:abc', 'blob_pull'],
    ['GET', '/tokens', 'other'],
  ];
  for (const [method, path, operation] of cases) t.equal(operationOf(method, path), operation, `${method} ${path}`);
});
