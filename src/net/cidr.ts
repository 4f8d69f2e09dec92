import net from 'node:net';

/** A set of address ranges, parsed once at start-up and only read per request. */
export interface AddressSet {
  readonly cidrs: readonly string[];
  has(address: string | undefined): boolean;
}

/**
 * An IPv4 peer on a dual-stack listener shows up as ::ffff:a.b.c.d; compare it as IPv4
 * so that "10.0.0.0/8" matches it.
 */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** Parses "10.0.0.0/8", "::1", "fd00::/8"; throws a message naming what was expected. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [addr = '', prefixText, ...rest] = text.trim().split('/');
  const version = net.isIP(addr);
  if (version === 0 || rest.length > 0) {
    throw new Error(`expected an IP address or CIDR such as 10.0.0.0/8 or fd00::/8, got "${text}"`);
  }
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) {
    throw new Error(`expected a prefix length after "/" in "${text}"`);
  }
  if (prefix > max) throw new Error(`prefix /${prefix} is longer than ${max} bits in "${text}"`);
  return { address: addr, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function addressSet(cidrs: readonly string[]): AddressSet {
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const { address, prefix, family } = parseCidr(cidr);
    list.addSubnet(address, prefix, family);
  }
  const frozen = Object.freeze([...cidrs]);
  return {
    cidrs: frozen,
    has(address) {
      if (!address || frozen.length === 0) return false;
      const plain = normalizeAddress(address);
      const version = net.isIP(plain);
      if (version === 0) return false;
      return list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
