import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root: the Docker build context. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const REPLAY = path.join(ROOT, 'deploy/replay-dockerfile.mjs');
export const DOCKERFILE = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

export interface Step {
  keyword: string;
  from?: string;
  sources?: string[];
  dest?: string;
  chown?: string;
}

export interface ImageConfig {
  env: Record<string, string>;
  labels: Record<string, string>;
  user: string;
  workdir: string;
  volumes: string[];
  exposed: string[];
  stopSignal: string;
  entrypoint: string[];
  cmd: string[];
  healthcheck?: string[];
}

export interface Plan {
  stages: { name: string | null; image: string; steps: Step[] }[];
  image: ImageConfig;
}

/** deploy/replay-dockerfile.mjs's own reading of a Dockerfile (its --plan), or its error. */
export function planOf(text: string): { plan?: Plan; error?: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-plan-'));
  try {
    fs.writeFileSync(path.join(dir, 'Dockerfile'), text);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS'));
    const ran = spawnSync(process.execPath, [REPLAY, '--plan', '--dockerfile', path.join(dir, 'Dockerfile')], { encoding: 'utf8', env, cwd: ROOT });
    return ran.status === 0 ? { plan: JSON.parse(ran.stdout) as Plan } : { error: ran.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The repository's Dockerfile, as the replay reads it. */
export function imagePlan(): Plan {
  const { plan, error } = planOf(DOCKERFILE);
  if (!plan) throw new Error(`deploy/replay-dockerfile.mjs cannot read the Dockerfile: ${error}`);
  return plan;
}

export const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  license: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
