import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import t from 'tap';
import YAML from 'yaml';
import { ENV_CONFIG_FILE } from '../../src/config/schema.js';
import { DEFAULT_CONFIG_FILE } from '../../src/config/load.js';
import { buildConfig, flattenYaml, fromEnv } from '../../src/config/validate.js';
import { imagePlan, PACKAGE, ROOT } from '../helpers/image.js';

const DIR = path.join(ROOT, 'deploy/kubernetes');
const image = imagePlan().image;

/** The Kubernetes (and cert-manager) schemas, as compiled validators, by apiVersion and kind. */
const MODELS: Record<string, new (doc: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'cert-manager.io/v1/Certificate': Certificate,
};

// Loosely typed views of what the test reads; the schemas above check the full shape.
/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = Record<string, any>;
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const docs: { file: string; doc: Doc }[] = files.flatMap((file) =>
  YAML.parseAllDocuments(fs.readFileSync(path.join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return { file, doc: d.toJS() as Doc };
  }),
);
const only = (kind: string): Doc => {
  const found = docs.filter((d) => d.doc.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!.doc;
};

t.test('every manifest validates against the Kubernetes (and cert-manager) schemas', async (t) => {
  for (const { file, doc } of docs) {
    const model = MODELS[`${doc.apiVersion}/${doc.kind}`];
    if (!model) {
      t.fail(`${file}: ${doc.apiVersion} ${doc.kind} has no schema here`);
      continue;
    }
    t.doesNotThrow(() => new model(doc as never).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`);
  }
  // The validators do reject a wrong manifest.
  const broken = structuredClone(only('Deployment'));
  broken.spec.replicas = 'two';
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'https';
  t.throws(() => new Deployment(broken as never).validate(), /replicas must be integer/, 'a broken Deployment is refused');
});

/** The models' TypeScript interfaces, for the excess-property check below. */
const INTERFACES: Record<string, [module: string, name: string]> = {
  'v1/ConfigMap': ['kubernetes-models/v1/ConfigMap', 'IConfigMap'],
  'v1/Service': ['kubernetes-models/v1/Service', 'IService'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1/Deployment', 'IDeployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'],
  'autoscaling/v2/HorizontalPodAutoscaler': ['kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', 'IHorizontalPodAutoscaler'],
  'cert-manager.io/v1/Certificate': ['@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate', 'ICertificate'],
};

/** Type-checks the manifests as object literals of their interfaces; returns tsc's output. */
function typeCheck(manifests: readonly Doc[]): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(ROOT, '.tap', 'k8s-types-'));
  try {
    const lines: string[] = [];
    manifests.forEach((doc, i) => {
      const [module, name] = INTERFACES[`${doc.apiVersion}/${doc.kind}`]!;
      lines.push(`import type { ${name} as T${i} } from '${module}';`, `export const m${i}: T${i} = ${JSON.stringify(doc, null, 2)};`);
    });
    fs.writeFileSync(path.join(dir, 'manifests.ts'), lines.join('\n') + '\n');
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const ran = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'commonjs', '--moduleResolution', 'node10', path.join(dir, 'manifests.ts')], { encoding: 'utf8', cwd: ROOT });
    return { status: ran.status, output: ran.stdout + ran.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

t.test('no unknown or misspelled fields: each manifest type-checks as its model\'s interface', async (t) => {
  // The schema validators above ignore fields they do not know (as the JSON schemas allow);
  // TypeScript's excess-property check on object literals does not.
  const checked = typeCheck(docs.map((d) => d.doc));
  t.equal(checked.status, 0, 'tsc accepts every manifest as its interface', { output: checked.output });
  const typo = structuredClone(only('Deployment'));
  typo.spec.template.spec.containers[0].readinesProbe = typo.spec.template.spec.containers[0].readinessProbe;
  delete typo.spec.template.spec.containers[0].readinessProbe;
  const refused = typeCheck([typo]);
  t.not(refused.status, 0, 'a misspelled field is refused');
  t.match(refused.output, /error TS2353: Object literal may only specify known properties, and '"readinesProbe"' does not exist in type 'IContainer'/, 'naming the field', { output: refused.output });
});

t.test('kustomization.yaml lists manifests that exist, HPA optional', async (t) => {
  const k = YAML.parse(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')) as Doc;
  t.equal(k.kind, 'Kustomization');
  for (const r of k.resources as string[]) t.ok(files.includes(r), `${r} exists`);
  t.same([...files].filter((f) => !(k.resources as string[]).includes(f)), ['hpa.yaml'], 'everything but the optional HPA is applied');
});

t.test('Deployment: replicas, probes on the admin listener, resources, grace, hardening', async (t) => {
  const deployment = only('Deployment');
  const configMap = only('ConfigMap');
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers as Doc[];
  t.ok(container, 'a berth container');
  t.ok(deployment.spec.replicas >= 2, 'at least two replicas');
  t.equal(container!.image, `berth:${PACKAGE.version}`, 'the image tag is the package version');

  // The configuration the pod runs with: image ENV, the ConfigMap's file where the image
  // looks for it, then the container's env (values only; valueFrom is filled in by the kubelet).
  const mounts = container!.volumeMounts as Doc[];
  const configMount = mounts.find((m) => pod.volumes.find((v: Doc) => v.name === m.name)?.configMap?.name === configMap.metadata.name);
  t.ok(configMount, 'the ConfigMap is mounted');
  const configFile = image.env[ENV_CONFIG_FILE] ?? path.posix.join(image.workdir, DEFAULT_CONFIG_FILE);
  const key = path.posix.relative(configMount!.mountPath, configFile);
  t.ok(configMap.data[key], `the ConfigMap's ${key} lands on ${configFile}, where the image reads its config`);
  const env: Record<string, string> = { ...image.env };
  for (const e of container!.env as Doc[]) env[e.name] = e.value ?? '2';
  const config = buildConfig([flattenYaml(YAML.parse(configMap.data[key]), 'configmap'), fromEnv(env, [ENV_CONFIG_FILE])]);
  t.pass('the ConfigMap and env are a valid berth configuration');

  // Probes: berth's admin paths on the admin listener's port, reachable on the pod IP.
  const ports = new Map((container!.ports as Doc[]).map((p) => [p.name, p.containerPort]));
  const portOf = (p: string | number): number => (typeof p === 'number' ? p : ports.get(p));
  t.equal(config.admin.listen?.host, undefined, 'the admin listener is on every interface (the kubelet probes the pod IP)');
  t.equal(container!.readinessProbe.httpGet.path, '/readyz');
  t.equal(portOf(container!.readinessProbe.httpGet.port), config.admin.listen?.port, 'readiness probes the admin port');
  t.equal(container!.livenessProbe.httpGet.path, '/healthz');
  t.equal(portOf(container!.livenessProbe.httpGet.port), config.admin.listen?.port, 'liveness probes the admin port');
  t.equal(ports.get('https'), config.listen.port, 'the https port is berth\'s listener');
  t.equal(ports.get('http'), config.http.listen?.port, 'the http port is berth\'s redirect listener');

  // TLS from the Secret: the files berth reads are in the Secret's mount.
  const secretVolume = (pod.volumes as Doc[]).find((v) => v.secret);
  const secretMount = mounts.find((m) => m.name === secretVolume?.name);
  t.equal(path.posix.dirname(config.tls.cert!), secretMount?.mountPath, 'tls.cert is in the Secret mount');
  t.equal(path.posix.dirname(config.tls.key!), secretMount?.mountPath, 'tls.key is in the Secret mount');
  t.equal(path.posix.basename(config.tls.cert!), 'tls.crt', 'the kubernetes.io/tls Secret key for the chain');
  t.equal(path.posix.basename(config.tls.key!), 'tls.key');
  t.equal(only('Certificate').spec.secretName, secretVolume?.secret.secretName, 'cert-manager writes the Secret the pod mounts');
  t.ok(only('Certificate').spec.dnsNames.includes(config.publicOrigin?.host), 'the certificate names publicOrigin\'s host');

  // A drain is not cut: the grace period covers the preStop pause plus shutdown.grace.
  const pause = Number(container!.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  t.ok(pod.terminationGracePeriodSeconds * 1000 > config.shutdown.grace + pause * 1000, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > ${pause} s preStop + shutdown.grace ${config.shutdown.grace / 1000} s`);

  for (const r of ['cpu', 'memory']) {
    t.ok(container!.resources.requests[r], `requests.${r}`);
    t.ok(container!.resources.limits[r], `limits.${r}`);
  }
  t.equal(container!.env.find((e: Doc) => e.name === 'BERTH_WORKERS')?.valueFrom?.resourceFieldRef?.resource, 'limits.cpu', 'one worker per CPU of the limit');

  const [uid, gid] = image.user.split(':').map(Number);
  t.equal(pod.securityContext.runAsNonRoot, true, 'runAsNonRoot');
  t.equal(pod.securityContext.runAsUser, uid, 'runAsUser is the image\'s USER');
  t.equal(pod.securityContext.runAsGroup, gid);
  t.equal(container!.securityContext.readOnlyRootFilesystem, true, 'read-only root filesystem');
  t.equal(container!.securityContext.allowPrivilegeEscalation, false, 'no privilege escalation');
  t.same(container!.securityContext.capabilities.drop, ['ALL'], 'all capabilities dropped');
  for (const volume of image.volumes) t.ok(mounts.some((m) => m.mountPath === volume), `the image's VOLUME ${volume} has a mount (read-only root)`);
});

t.test('Service, PodDisruptionBudget and HPA select the Deployment\'s pods', async (t) => {
  const deployment = only('Deployment');
  const labels = deployment.spec.template.metadata.labels as Record<string, string>;
  const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  const service = only('Service');
  t.ok(matches(service.spec.selector), 'the Service selects the pods');
  const names = new Set((deployment.spec.template.spec.containers[0].ports as Doc[]).map((p) => p.name));
  for (const p of service.spec.ports as Doc[]) t.ok(names.has(p.targetPort), `Service port ${p.port} targets the container's ${p.targetPort} port`);
  t.notOk((service.spec.ports as Doc[]).some((p) => p.targetPort === 'admin'), 'the admin port is not exposed by the load balancer');
  t.equal(service.spec.externalTrafficPolicy, 'Local', 'client addresses are kept');
  const pdb = only('PodDisruptionBudget');
  t.ok(matches(pdb.spec.selector.matchLabels), 'the PDB selects the pods');
  t.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < deployment.spec.replicas, 'the PDB keeps one serving and still lets a node drain');
  const hpa = only('HorizontalPodAutoscaler');
  t.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
  t.ok(hpa.spec.minReplicas >= deployment.spec.replicas, 'the HPA keeps at least the Deployment\'s replicas');
});
