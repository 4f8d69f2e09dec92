import net from 'node:net';
import { isNamed, namedAt } from '../headerName.js';
import type { ResponsePass } from './headers.js';

/**
 * HSTS tells browsers (Harbor's UI) to use https only for this host. It is sent for
 * named hosts only: pinning localhost or an IP address to https would break whatever
 * else a developer runs there. Decided once per request, by the host pass (or once for
 * all when publicOrigin is set: proxySettings), from the host as parsed there.
 */
export function hstsNamesHost(host: string): boolean {
  // Compared in any case, without a lowercased copy of a host that arrives with every request.
  const name = host.startsWith('[') ? host.slice(1, -1) : host;
  return !(ENDS_IN_NUMBER.test(name) || net.isIP(name) || isNamed(name, 'localhost') || endsNamed(name, '.localhost'));
}

/** Whether `name` ends with `lower` (lowercase ASCII) in any case. */
function endsNamed(name: string, lower: string): boolean {
  return name.length >= lower.length && namedAt(name, lower, name.length - lower.length);
}

/**
 * A host whose last label is a number is an IPv4 address to browsers ("127.1", "0x7f.1",
 * "2130706433": the WHATWG URL parser's "ends in a number").
 */
const ENDS_IN_NUMBER = /(?:^|\.)(?:\d+|0x[0-9a-f]*)\.?$/i;

/** Adds the request's Strict-Transport-Security value, if it has one; an upstream's own header wins. */
export const addHsts: ResponsePass = (ctx) => {
  if (ctx.hsts === undefined) return;
  const headers = ctx.headers;
  for (let i = 0; i + 1 < headers.length; i += 2) if (isNamed(headers[i]!, 'strict-transport-security')) return;
  headers.push('Strict-Transport-Security', ctx.hsts);
};
