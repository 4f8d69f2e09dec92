import net from 'node:net';
import type { ResponsePass } from './headers.js';

/**
 * HSTS tells browsers (Harbor's UI) to use https only for this host. It is sent for
 * named hosts only: pinning localhost or an IP address to https would break whatever
 * else a developer runs there. An upstream's own header wins.
 */
export function hstsApplies(publicOrigin: string): boolean {
  if (!publicOrigin) return false;
  const host = new URL(publicOrigin).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return !(net.isIP(host) || host === 'localhost' || host.endsWith('.localhost'));
}

export const addHsts: ResponsePass = (ctx) => {
  if (ctx.hsts === undefined || !hstsApplies(ctx.publicOrigin)) return;
  if (ctx.headers.some(([name]) => name.toLowerCase() === 'strict-transport-security')) return;
  ctx.headers.push(['Strict-Transport-Security', ctx.hsts]);
};
