import { KEYS } from './schema.js';
import type { Config } from './validate.js';

/** A setting's value, comparable: URLs by their text, address sets by their CIDRs. */
function valueAt(config: Config, path: string): string {
  let value: unknown = config;
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  if (value instanceof URL) return value.href;
  if (typeof value === 'object' && value !== null && 'cidrs' in value) return JSON.stringify((value as { cidrs: unknown }).cidrs);
  return JSON.stringify(value ?? null);
}

/** The settings (schema paths) whose values differ between two configs. */
export function changedSettings(before: Config, after: Config): string[] {
  return KEYS.map((spec) => spec.path).filter((path) => valueAt(before, path) !== valueAt(after, path));
}
