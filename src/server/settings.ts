import { namesClientsUse, type Config } from '../config/validate.js';
import { nameSet, type NameSet } from '../net/names.js';
import { proxySettings, type ProxySettings } from '../proxy/context.js';

/** publicOrigin's host and serverNames; undefined when neither is set (names not enforced). */
export function servedNames(config: Config): NameSet | undefined {
  const names = namesClientsUse(config);
  return names.length > 0 ? nameSet(names) : undefined;
}

/**
 * What the request and response passes read, from the Config: the listener's, and
 * `berth doctor`'s when it builds the headers berth would send the registry.
 * `devCertificate`: berth serves its development certificate.
 */
export function proxySettingsOf(config: Config, devCertificate: boolean): ProxySettings {
  return proxySettings({
    upstream: config.upstream,
    publicOrigin: config.publicOrigin?.origin,
    trustedProxies: config.trustedProxies,
    names: servedNames(config),
    // Never with the development certificate: browsers would then refuse the host for a year.
    hsts: config.hsts.maxAge > 0 && !devCertificate ? `max-age=${Math.floor(config.hsts.maxAge / 1000)}` : undefined,
  });
}
