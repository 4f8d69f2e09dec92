import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ENV_CONFIG_FILE, ENV_WORKER_TLS_PORT, KEYS } from './schema.js';
import { ConfigError, buildConfig, flattenYaml, fromEnv, type Config, type Raw } from './validate.js';

export const DEFAULT_CONFIG_FILE = path.join('config', 'berth.yaml');

export interface CliArgs {
  readonly configFile: string | undefined;
  readonly flags: Map<string, Raw>;
  readonly help: boolean;
  readonly version: boolean;
}

/** Flags: every key that has one in the schema, plus --config, --help, --version. */
export function parseFlags(argv: readonly string[]): CliArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  };
  for (const spec of KEYS) if (spec.flag) options[spec.flag] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new ConfigError('command line', `${(err as Error).message}; see berth --help`);
  }
  const flags = new Map<string, Raw>();
  for (const spec of KEYS) {
    const value = spec.flag ? parsed.values[spec.flag] : undefined;
    if (typeof value === 'string') flags.set(spec.path, { value, source: `--${spec.flag}` });
  }
  return {
    configFile: parsed.values.config as string | undefined,
    flags,
    help: parsed.values.help === true,
    version: parsed.values.version === true,
  };
}

/** Reads a YAML file; a missing default file is fine, a missing named one is not. */
export function readYaml(file: string, required: boolean): Map<string, Raw> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new ConfigError('--config', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text, { uniqueKeys: true });
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    throw new ConfigError(file, `not valid YAML: ${first}`);
  }
  return flattenYaml(doc, file);
}

/** The config file the settings are read from: the one named, or the default one when it exists. */
export function configFileIn(args: CliArgs, env: NodeJS.ProcessEnv): string | undefined {
  const named = args.configFile ?? env[ENV_CONFIG_FILE];
  if (named !== undefined) return named;
  return fs.existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined;
}

/** YAML file, then BERTH_* variables, then flags: each later layer wins. */
export function loadConfig(args: CliArgs, env: NodeJS.ProcessEnv): Config {
  const named = args.configFile ?? env[ENV_CONFIG_FILE];
  const fileLayer = readYaml(named ?? DEFAULT_CONFIG_FILE, named !== undefined);
  return buildConfig([fileLayer, fromEnv(env, [ENV_CONFIG_FILE, ENV_WORKER_TLS_PORT]), args.flags]);
}
