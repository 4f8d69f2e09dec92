import net from 'node:net';
import type { ResponsePass } from './headers.js';

/**
 * HSTS tells browsers (Harbor's UI) to use https only for this host. It is sent for
 * named hosts only: pinning localhost or an IP address to https would break whatever
 * else a developer runs there. An upstream's own header wins.
 */
export function hstsApplies(publicOrigin: string): boolean {
  if (!publicOrigin) return false;
  let applies = decided.get(publicOrigin);
  if (applies === undefined) {
    const host = new URL(publicOrigin).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    applies = !(net.isIP(host) || host === 'localhost' || host.endsWith('.localhost'));
    // A handful of origins in practice (publicOrigin, or the few Hosts clients use); the
    // bound keeps a client that varies its Host from growing it.
    if (decided.size >= DECIDED_MAX) decided.clear();
    decided.set(publicOrigin, applies);
  }
  return applies;
}

/** hstsApplies' answers by origin: it runs for every response. */
const decided = new Map<string, boolean>();
const DECIDED_MAX = 256;

export const addHsts: ResponsePass = (ctx) => {
  if (ctx.hsts === undefined || !hstsApplies(ctx.publicOrigin)) return;
  if (ctx.headers.some(([name]) => name.toLowerCase() === 'strict-transport-security')) return;
  ctx.headers.push(['Strict-Transport-Security', ctx.hsts]);
};
