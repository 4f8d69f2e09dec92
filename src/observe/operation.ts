/**
 * The registry operation a request performs, for metrics: a label with a handful of
 * values, so that dashboards can tell pushes from pulls without per-repository series.
 */
export type Operation = 'blob_upload' | 'blob_pull' | 'manifest_push' | 'manifest_pull' | 'token' | 'other';

export const OPERATIONS: readonly Operation[] = ['blob_upload', 'blob_pull', 'manifest_push', 'manifest_pull', 'token', 'other'];

// Repository names have one or more path components (distribution/reference), so the
// operation is read from the end of the path.
const UPLOAD = /^\/v2\/.+\/blobs\/uploads(?:\/[^/?#]*)?(?:[?#]|$)/;
const BLOB = /^\/v2\/.+\/blobs\/[^/?#]+(?:[?#]|$)/;
const MANIFEST = /^\/v2\/.+\/manifests\/[^/?#]+(?:[?#]|$)/;
/** Harbor's token service, and the paths token servers commonly use. */
const TOKEN = /^\/(?:service\/token|token|auth|v2\/token)(?:[/?#]|$)/;

export function operationOf(method: string, path: string): Operation {
  if (UPLOAD.test(path)) return 'blob_upload';
  if (BLOB.test(path)) return method === 'GET' || method === 'HEAD' ? 'blob_pull' : 'other';
  if (MANIFEST.test(path)) {
    if (method === 'PUT') return 'manifest_push';
    return method === 'GET' || method === 'HEAD' ? 'manifest_pull' : 'other';
  }
  if (TOKEN.test(path)) return 'token';
  return 'other';
}
