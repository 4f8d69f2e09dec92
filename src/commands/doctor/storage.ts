import crypto from 'node:crypto';
import dns from 'node:dns/promises';
import type { AuthState } from './auth.js';
import { asClient, forwarded, type DoctorContext } from './context.js';
import type { Finding } from './findings.js';
import { errorCode, send, type Endpoint, type Reply } from './probe.js';

/**
 * Storage redirects: a registry on object storage (S3, GCS, Azure, MinIO) answers a blob GET
 * with a redirect to a presigned storage URL, and the client fetches the blob from there,
 * not through berth (berth leaves such redirects alone: rewriting them would break their
 * signature). So the storage endpoint must be reachable by clients themselves. doctor
 * pushes a 1 KiB blob, asks for it as a client does, and follows a redirect the way a client
 * would: does the name resolve, does the certificate verify (with the CAs clients are given),
 * does it serve the blob. From where doctor runs: a client elsewhere may resolve differently.
 */

/** `ca`: the CAs clients verify with (public roots, plus a private CA they were given). */
export async function storageFindings(ctx: DoctorContext, auth: AuthState, ca: readonly string[], findings: Finding[]): Promise<void> {
  // Text, so that the reply body (kept as text) compares byte for byte.
  const blob = Buffer.from(crypto.randomBytes(512).toString('hex'));
  const digest = `sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`;
  const authorization: Record<string, string> = auth.authorization ? { authorization: auth.authorization } : {};
  const blobPath = `/v2/${ctx.repository}/blobs/${digest}`;
  const pushed = await pushBlob(ctx, blob, digest, authorization);
  if (pushed !== undefined) {
    findings.push({ id: 'storage-redirect', area: 'storage', level: 'warning', detail: `could not push a 1 KiB test blob to ${ctx.repository}: ${pushed}; storage redirects not checked` });
    return;
  }
  try {
    const via = ctx.berth ?? ctx.upstream;
    const headers = ctx.berth ? asClient(ctx, authorization) : forwarded(ctx, 'GET', authorization);
    const reply = await send(via, { method: 'GET', path: blobPath, headers, timeoutMs: ctx.timeoutMs }).catch((err: unknown) => errorCode(err));
    if (typeof reply === 'string') {
      findings.push({ id: 'storage-redirect', area: 'storage', level: 'warning', detail: `GET of the test blob failed: ${reply}` });
      return;
    }
    findings.push(await redirectFinding(ctx, reply, blob, ca));
  } finally {
    // Deleting blobs is off in many registries (405): the blob, unreferenced, goes at the next garbage collection.
    await send(ctx.upstream, { method: 'DELETE', path: blobPath, headers: forwarded(ctx, 'DELETE', authorization), timeoutMs: ctx.timeoutMs }).catch(() => undefined);
  }
}

/** Pushes the blob straight to the upstream (POST, then PUT with the digest); undefined when it worked, else why not. */
async function pushBlob(ctx: DoctorContext, blob: Buffer, digest: string, authorization: Record<string, string>): Promise<string | undefined> {
  const start = `/v2/${ctx.repository}/blobs/uploads/`;
  try {
    const started = await send(ctx.upstream, { method: 'POST', path: start, headers: forwarded(ctx, 'POST', { ...authorization, 'content-length': '0' }), timeoutMs: ctx.timeoutMs });
    if (started.status !== 202 || !started.headers.location) return `POST answered ${started.status}`;
    const target = new URL(started.headers.location, ctx.config.upstream);
    target.searchParams.set('digest', digest);
    const put = await send(ctx.upstream, { method: 'PUT', path: target.pathname + target.search, headers: forwarded(ctx, 'PUT', { ...authorization, 'content-type': 'application/octet-stream' }), body: blob, timeoutMs: ctx.timeoutMs });
    return put.status === 201 ? undefined : `PUT answered ${put.status}`;
  } catch (err) {
    return errorCode(err);
  }
}

async function redirectFinding(ctx: DoctorContext, reply: Reply, blob: Buffer, ca: readonly string[]): Promise<Finding> {
  const base = { id: 'storage-redirect', area: 'storage' } as const;
  const location = reply.headers.location;
  if (reply.status === 200) return { ...base, level: 'ok', detail: 'blob GETs are answered by the registry itself (no redirect to object storage)' };
  if (reply.status < 300 || reply.status > 399 || location === undefined) return { ...base, level: 'warning', detail: `GET of the test blob answered ${reply.status}` };
  const target = new URL(location, ctx.publicOrigin);
  const where = `blob GETs are redirected (${reply.status}) to ${target.protocol}//${target.host}, which clients fetch themselves (berth leaves storage redirects alone)`;
  const fix = 'give the storage an endpoint clients resolve and trust (the bucket\'s public or regional URL, MinIO\'s external URL), or have the registry serve blobs itself: Distribution storage.redirect.disable: true, Harbor storage_service.redirect.disable: true in harbor.yml';
  const data = { status: reply.status, host: target.host, protocol: target.protocol };
  const hostname = target.hostname.replace(/^\[(.*)\]$/, '$1');
  try {
    await dns.lookup(hostname);
  } catch (err) {
    return { ...base, level: 'problem', detail: `${where}; ${target.hostname} does not resolve from here (${errorCode(err)})`, cause: 'the registry\'s storage names an endpoint only the registry\'s own network resolves', fix, data };
  }
  const storage: Endpoint = { name: 'storage', connect: new URL(target.origin), servername: hostname, ca };
  let fetched: Reply;
  try {
    fetched = await send(storage, { method: 'GET', path: target.pathname + target.search, timeoutMs: ctx.timeoutMs });
  } catch (err) {
    const code = errorCode(err);
    const tls = /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME|SSL|TLS/i.test(code);
    return {
      ...base,
      level: 'problem',
      detail: `${where}; ${tls ? 'its certificate does not verify' : 'it cannot be reached'} from here (${code})`,
      cause: tls ? 'the storage endpoint\'s certificate is not one clients trust (a private CA they were not given, or a name it does not cover)' : 'the storage endpoint is not reachable from the clients\' side (an internal address, a firewall)',
      fix,
      data,
    };
  }
  if (fetched.status !== 200 || fetched.body !== blob.toString()) {
    return { ...base, level: 'problem', detail: `${where}; it answered ${fetched.status}${fetched.status === 200 ? ' with other bytes than the blob' : ''}`, cause: 'the presigned URL is refused (clock skew, a signature over a rewritten Host) or the endpoint is not the bucket', fix, data };
  }
  if (target.protocol !== 'https:') {
    return { ...base, level: 'warning', detail: `${where}; it served the blob, over plain http (layers travel unencrypted, and clients behind a proxy that allows only https fail)`, fix, data };
  }
  return { ...base, level: 'ok', detail: `${where}; from here the name resolves, the certificate verifies and it served the blob`, data };
}
