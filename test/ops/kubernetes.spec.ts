import { describe, expect, it } from '@jest/globals';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { ENV_VARIABLES, loadConfig } from '#config';
import { HealthController } from '#health';

/** Kubernetes objects, typed only as far as these checks read them. */
interface Selector {
  matchLabels?: Record<string, string>;
}
interface Probe {
  httpGet?: { path: string; port: number | string };
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; [other: string]: unknown };
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: unknown[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}
interface DeploymentSpec {
  replicas?: number;
  selector: Selector;
  template: {
    metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
    spec: {
      terminationGracePeriodSeconds?: number;
      securityContext?: SecurityContext;
      containers: Container[];
      initContainers?: Container[];
    };
  };
}

const DIR = 'deploy/kubernetes';

function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJS() as K8sObject;
  });
}

const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as {
  resources: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
};
const objects = kustomization.resources.flatMap(readObjects);
const [secret] = readObjects('secret.example.yaml');
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const deployments = ofKind('Deployment').map((d) => ({
  name: d.metadata.name,
  spec: d.spec as unknown as DeploymentSpec,
}));

/** The routes of the health controller, as Nest mounts them (`/health/live`, `/health/ready`). */
const healthRoutes = (() => {
  const base = Reflect.getMetadata(PATH_METADATA, HealthController) as string;
  const proto = HealthController.prototype as unknown as Record<string, object>;
  return Object.getOwnPropertyNames(proto)
    .map((key) => proto[key]!)
    .filter((fn) => Reflect.getMetadata(METHOD_METADATA, fn) === RequestMethod.GET)
    .map((fn) => `/${base}/${Reflect.getMetadata(PATH_METADATA, fn) as string}`);
})();

const secretValues = { ...(secret!.stringData ?? {}) };

/** The environment a container gets: its literal values, and the example Secret's for secretKeyRef. */
function containerEnv(c: Container): Record<string, string> {
  return Object.fromEntries(
    (c.env ?? []).map((e) => [
      e.name,
      e.value ?? (e.valueFrom?.secretKeyRef ? secretValues[e.valueFrom.secretKeyRef.key] : undefined) ?? '',
    ]),
  );
}

/** Which app a container runs, from its command; the entry point must be the build of an app's main.ts. */
function role(c: Container): 'gateway' | 'worker' {
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  expect(argv[0]).toBe('node');
  const match = /^dist\/(apps\/(gateway|worker)\/src\/main)\.js$/.exec(argv[1] ?? '');
  expect(match).not.toBeNull();
  expect(existsSync(`${match![1]}.ts`)).toBe(true);
  return match![2] as 'gateway' | 'worker';
}

const matches = (selector: Selector | undefined, labels: Record<string, string>) =>
  Object.keys(selector?.matchLabels ?? {}).length > 0 &&
  Object.entries(selector!.matchLabels!).every(([k, v]) => labels[k] === v);

describe('deploy/kubernetes', () => {
  it('applies every manifest of the folder through kustomization.yaml, but not the example Secret', () => {
    const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
    expect(kustomization.resources.sort()).toEqual(
      files.filter((f) => f !== 'kustomization.yaml' && f !== 'secret.example.yaml').sort(),
    );
    for (const o of objects) expect(o.metadata.name).toMatch(/^session-revoker(-[a-z]+)*$/);
    expect(secret!.kind).toBe('Secret');
  });

  it('runs a gateway and a worker Deployment from the one image, as docker-compose does', () => {
    const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
      services: Record<string, { image: string; command: string[] }>;
    };
    const roles = deployments.map((d) => {
      expect(d.spec.template.spec.containers).toHaveLength(1);
      const c = d.spec.template.spec.containers[0]!;
      const r = role(c);
      expect(c.command).toEqual(compose.services[r]!.command);
      const repository = c.image.split(':')[0];
      expect(repository).toBe(compose.services[r]!.image.split(':')[0]);
      expect(kustomization.images?.map((i) => i.name) ?? [repository]).toContain(repository);
      return r;
    });
    expect(roles.sort()).toEqual(['gateway', 'worker']);
  });

  describe.each(deployments.map((d) => [d.name, d.spec] as const))('%s', (name, spec) => {
    const pod = spec.template.spec;
    const c = pod.containers[0]!;
    const env = containerEnv(c);

    it('selects its own pods', () => {
      expect(matches(spec.selector, spec.template.metadata.labels)).toBe(true);
    });

    it('reads only variables the configuration knows, secrets from the Secret, and starts with them', () => {
      const names = (c.env ?? []).map((e) => e.name);
      expect(new Set(names).size).toBe(names.length);
      for (const n of names) expect(ENV_VARIABLES).toContain(n);
      expect(c.envFrom ?? []).toEqual([]);
      for (const e of c.env ?? []) {
        expect(e.value === undefined).toBe(e.valueFrom !== undefined);
        if (e.value !== undefined) expect(typeof e.value).toBe('string');
        if (e.valueFrom) {
          expect(Object.keys(e.valueFrom)).toEqual(['secretKeyRef']);
          expect(e.valueFrom.secretKeyRef!.name).toBe(secret!.metadata.name);
          expect(Object.keys(secretValues)).toContain(e.valueFrom.secretKeyRef!.key);
        }
      }
      for (const n of ['REDIS_URL', 'SESSION_TAG_SECRET'])
        expect(c.env?.find((e) => e.name === n)?.valueFrom?.secretKeyRef).toBeDefined();
      expect(() => loadConfig(env)).not.toThrow();
    });

    it('declares the port the app listens on, and probes the health routes there', () => {
      const config = loadConfig(env);
      const port = role(c) === 'gateway' ? config.port : config.workerPort;
      expect(c.ports?.map((p) => p.containerPort)).toEqual([port]);
      const portName = c.ports![0]!.name;
      const probes = { liveness: c.livenessProbe, readiness: c.readinessProbe, startup: c.startupProbe };
      expect(probes.liveness?.httpGet?.path).toBe('/health/live');
      expect(probes.readiness?.httpGet?.path).toBe('/health/ready');
      for (const probe of Object.values(probes).filter(Boolean)) {
        expect(healthRoutes).toContain(probe!.httpGet!.path);
        expect([port, portName]).toContain(probe!.httpGet!.port);
      }
      const annotations = spec.template.metadata.annotations ?? {};
      if (annotations['prometheus.io/port']) expect(annotations['prometheus.io/port']).toBe(String(port));
    });

    it('runs non-root, read-only, without privilege escalation or capabilities', () => {
      const sc = c.securityContext ?? {};
      expect(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot).toBe(true);
      // The image's user is `node` by name: the kubelet needs a numeric, non-zero uid to enforce non-root.
      expect(sc.runAsUser ?? pod.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(sc.readOnlyRootFilesystem).toBe(true);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.privileged ?? false).toBe(false);
      expect(sc.capabilities?.drop).toContain('ALL');
      expect(sc.capabilities?.add ?? []).toEqual([]);
      expect(pod.initContainers ?? []).toEqual([]);
    });

    it('asks for resources and caps them', () => {
      for (const r of ['cpu', 'memory']) {
        expect(c.resources?.requests?.[r]).toBeTruthy();
        expect(c.resources?.limits?.[r]).toBeTruthy();
      }
    });

    it('has a PodDisruptionBudget and a HorizontalPodAutoscaler of its own', () => {
      const labels = spec.template.metadata.labels;
      const pdbs = ofKind('PodDisruptionBudget').filter((p) =>
        matches((p.spec as { selector: Selector }).selector, labels),
      );
      expect(pdbs).toHaveLength(1);
      const pdb = pdbs[0]!.spec as { selector: Selector; minAvailable?: number; maxUnavailable?: number };
      expect(pdb.selector).toEqual(spec.selector);
      const hpas = ofKind('HorizontalPodAutoscaler').filter(
        (h) => (h.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === name,
      );
      expect(hpas).toHaveLength(1);
      expect(hpas[0]!.apiVersion).toBe('autoscaling/v2');
      const hpa = hpas[0]!.spec as {
        scaleTargetRef: { apiVersion: string; kind: string };
        minReplicas: number;
        maxReplicas: number;
        metrics: unknown[];
      };
      expect(hpa.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
      expect(hpa.metrics.length).toBeGreaterThan(0);
      expect(hpa.maxReplicas).toBeGreaterThanOrEqual(hpa.minReplicas);
      // A drain can always evict one pod: the budget never holds every replica.
      if (pdb.minAvailable !== undefined) expect(hpa.minReplicas).toBeGreaterThan(pdb.minAvailable);
      else expect(pdb.maxUnavailable).toBeGreaterThan(0);
      // The autoscaler owns the replica count; a fixed one would be reset on every apply.
      expect(spec.replicas).toBeUndefined();
    });
  });

  it('runs the gateway without the embedded worker, and gives the worker time to drain', () => {
    for (const { spec } of deployments) {
      const c = spec.template.spec.containers[0]!;
      const config = loadConfig(containerEnv(c));
      if (role(c) === 'gateway') expect(config.embeddedWorker).toBe(false);
      else
        expect((spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(
          config.worker.shutdownGraceMs,
        );
    }
  });

  it('exposes the gateway, and the worker for scraping, through Services on declared ports', () => {
    const services = ofKind('Service');
    for (const { name, spec } of deployments) {
      const c = spec.template.spec.containers[0]!;
      const svc = services.filter((s) =>
        matches(
          { matchLabels: (s.spec as { selector: Record<string, string> }).selector },
          spec.template.metadata.labels,
        ),
      );
      if (role(c) === 'gateway') expect(svc.length).toBeGreaterThan(0);
      for (const s of svc)
        for (const p of (s.spec as { ports: { targetPort: number | string }[] }).ports)
          expect({
            deployment: name,
            port: [c.ports![0]!.name, c.ports![0]!.containerPort].includes(p.targetPort),
          }).toEqual({
            deployment: name,
            port: true,
          });
    }
  });

  it('has an example Secret of placeholders, each key a variable the configuration reads', () => {
    expect(Object.keys(secret!.data ?? {})).toEqual([]);
    const keys = Object.keys(secretValues);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      expect(ENV_VARIABLES).toContain(k);
      expect(secretValues[k]).toMatch(/change-me/);
    }
    // Every key is used by some Deployment.
    const referenced = deployments.flatMap(({ spec }) =>
      (spec.template.spec.containers[0]!.env ?? []).flatMap((e) => e.valueFrom?.secretKeyRef?.key ?? []),
    );
    for (const k of keys) expect(referenced).toContain(k);
  });

  it('knows the health routes from the controller', () => {
    expect(healthRoutes).toEqual(expect.arrayContaining(['/health/live', '/health/ready']));
  });
});
