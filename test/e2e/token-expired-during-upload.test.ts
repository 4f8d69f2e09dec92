import crypto from 'node:crypto';
import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, e2eTools, startRegistry } from '../helpers/registry.js';
import { startTokenService } from '../helpers/tokenService.js';

/**
 * A push that outlives its bearer token, against the real registry behind a token service:
 * the upload starts with a fresh token, and its final PUT carries one that has expired (as
 * a client's does after a 30-minute Harbor token ran out mid-push). The registry refuses it
 * 401; berth says why, with the token's lifetime, and counts it.
 */

const tools = e2eTools();
const skip = tools.ok ? false : `missing ${(tools as { missing: string[] }).missing.join(', ')}`;

t.test('the real registry refuses an upload\'s PUT with an expired token: berth explains it', { skip }, async (t) => {
  const tokens = await startTokenService(t, { lifetimeSeconds: 1800 });
  const registry = await startRegistry(t, { relativeUrls: false, auth: { token: { realm: tokens.url, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle } } });
  const tb = await startTestBerth(t, { upstream: registry.url });
  const repo = 'expiry/app';
  const token = async (): Promise<string> => {
    const scope = `repository:${repo}:pull,push`;
    const reply = await fetch(`${tokens.url}?service=${tokens.service}&scope=${encodeURIComponent(scope)}`, { headers: { authorization: `Basic ${Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64')}` } });
    return `Bearer ${((await reply.json()) as { token: string }).token}`;
  };

  const fresh = await token();
  const start = await ask(tb, { method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: { authorization: fresh } });
  t.equal(start.status, 202, 'the upload starts with a fresh token');
  const blob = crypto.randomBytes(256 * 1024);
  let at = new URL(start.headers.location as string);
  const patch = await ask(tb, { method: 'PATCH', path: at.pathname + at.search, headers: { authorization: fresh, 'content-type': 'application/octet-stream' }, body: blob });
  t.equal(patch.status, 202, 'its body goes up');
  at = new URL(patch.headers.location as string);

  // Half an hour later, as far as the token can tell: issued 40 minutes ago, for 30.
  tokens.backdate = 40 * 60;
  const stale = await token();
  at.searchParams.set('digest', `sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`);
  const put = await ask(tb, { method: 'PUT', path: at.pathname + at.search, headers: { authorization: stale } });
  t.equal(put.status, 401, 'the registry refuses the final PUT');
  const warning = await waitForLog(tb, (l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes('bearer token the client sent had expired'));
  t.match(warning, { method: 'PUT', tokenLifetimeSeconds: 1800 });
  t.ok(Math.abs((warning.tokenExpiredSecondsAgo as number) - 600) <= 5, `expired ${String(warning.tokenExpiredSecondsAgo)} s before the PUT`);
  t.equal(typeof warning.uploadSeconds, 'number', 'with how long the upload had run');
  t.notMatch(String(warning.path), /_state=(?!REDACTED)/, 'the upload state stays out of the log');
  const line = await waitForLog(tb, (l) => l.msg === 'request' && l.method === 'PUT');
  t.equal(line.tokenExpired, true, 'the access line says so');
  t.match(await tb.berth.registry.getSingleMetricAsString('berth_upload_token_expired_total'), /berth_upload_token_expired_total 1\b/, 'and it is counted');

  // The client's retry with a fresh token finishes the upload: nothing was lost.
  tokens.backdate = 0;
  const retry = await ask(tb, { method: 'PUT', path: at.pathname + at.search, headers: { authorization: await token() } });
  t.equal(retry.status, 201, 'the same PUT with a new token completes the upload');
});
