import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Skopeo {
  run(args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }>;
  readonly authFile: string;
  readonly policyFile: string;
}

/**
 * skopeo with a private auth file and an accept-anything policy (test images are
 * unsigned). TLS is verified against the CA directory the caller passes; never
 * --tls-verify=false.
 */
export function skopeo(): Skopeo {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-skopeo-'));
  const authFile = path.join(dir, 'auth.json');
  const policyFile = path.join(dir, 'policy.json');
  fs.writeFileSync(policyFile, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  fs.writeFileSync(authFile, '{}');
  return {
    authFile,
    policyFile,
    run(args, input) {
      return new Promise((resolve, reject) => {
        const child = execFile('skopeo', [...args], { maxBuffer: 64 << 20, env: { ...process.env, REGISTRY_AUTH_FILE: authFile } }, (err, stdout, stderr) => {
          if (err) reject(new Error(`skopeo ${args.join(' ')} failed: ${stderr || err.message}`));
          else resolve({ stdout, stderr });
        });
        if (input !== undefined) child.stdin!.end(input);
      });
    },
  };
}
