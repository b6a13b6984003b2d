import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ENV_VARIABLES } from '#config';
import { exportedSeriesNames, parsePromQL, serviceRegistry } from '../support/promql.js';

interface ComposeService {
  profiles?: string[];
  image?: string;
  volumes?: string[];
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};

describe('docker-compose.yml (no Docker engine here: checked by parsing)', () => {
  const { redis, gateway, worker } = compose.services;

  it('has Redis with noeviction and AOF every second, and health-checked gateway and worker from one image', () => {
    const always = Object.entries(compose.services).filter(([, s]) => !s.profiles);
    expect(always.map(([name]) => name).sort()).toEqual(['gateway', 'redis', 'worker']);
    const args = redis!.command!.join(' ');
    expect(args).toMatch(/--maxmemory-policy noeviction/);
    expect(args).toMatch(/--appendonly yes/);
    expect(args).toMatch(/--appendfsync everysec/);
    expect(gateway!.image).toBe(worker!.image);
    expect(gateway!.build).toBeDefined();
    expect(gateway!.command).toEqual(['node', 'dist/apps/gateway/src/main.js']);
    expect(worker!.command).toEqual(['node', 'dist/apps/worker/src/main.js']);
    expect(gateway!.ports).toEqual(['3000:3000']);
    for (const s of [redis, gateway, worker]) expect(s!.healthcheck?.test.length).toBeGreaterThan(0);
    expect(gateway!.healthcheck!.test.join(' ')).toContain('3000/health/ready');
    expect(worker!.healthcheck!.test.join(' ')).toContain('3001/health/ready');
    expect(gateway!.depends_on!['redis']!.condition).toBe('service_healthy');
    expect(worker!.depends_on!['redis']!.condition).toBe('service_healthy');
  });

  it('runs gateway and worker apart, and sets only variables the service reads', () => {
    expect(gateway!.environment!['EMBEDDED_WORKER']).toBe('false');
    expect(gateway!.environment!['REDIS_URL']).toBe('redis://redis:6379');
    expect(worker!.environment!['REDIS_URL']).toBe('redis://redis:6379');
    for (const s of [gateway, worker])
      for (const name of Object.keys(s!.environment!)) expect(ENV_VARIABLES).toContain(name);
  });

  it('has an edge profile: NGINX with deploy/nginx/nginx.conf in front of a sample app, asking the edge alone', () => {
    const { edge, app, nginx } = compose.services;
    for (const s of [edge, app, nginx]) expect(s!.profiles).toEqual(['edge']);
    expect(edge!.image).toBe(gateway!.image);
    expect(edge!.command).toEqual(['node', 'dist/apps/gateway/src/edge/main.js']);
    for (const name of Object.keys(edge!.environment!)) expect(ENV_VARIABLES).toContain(name);
    expect(edge!.environment!['OIDC_REDIRECT_URI']).toContain('http://localhost:8000/auth/callback');
    expect(edge!.healthcheck!.test.join(' ')).toContain('3000/health/ready');
    expect(nginx!.ports).toEqual(['8000:8000']);
    expect(nginx!.volumes).toContain('./deploy/nginx/nginx.conf:/etc/session-revoker/nginx.conf:ro');
    expect(nginx!.depends_on!['edge']!.condition).toBe('service_healthy');
    // The container's sed, applied here to the file the NGINX test runs: each address it rewrites must
    // be there, and the result must point at this file's services.
    const script = nginx!.command!.join(' ');
    const edits = [...script.matchAll(/-e 's\/([^/]+)\/([^/]+)\/'/g)].map((m) => [m[1]!, m[2]!] as const);
    expect(edits).toHaveLength(3);
    let conf = readFileSync('deploy/nginx/nginx.conf', 'utf8');
    for (const [from, to] of edits) {
      expect(conf).toContain(from);
      conf = conf.replace(from, to);
    }
    expect(conf).toContain('server edge:3000;');
    expect(conf).toContain('server app:8080;');
    expect(conf).toMatch(/^\s*listen 8000;$/m);
    expect(conf).not.toContain('127.0.0.1');
    expect(script).toContain('nginx -p /tmp/nginx -c /tmp/nginx/nginx.conf');
    expect(app!.command).toEqual(['--port', '8080']);
  });

  it('builds a multi-stage image that runs as a non-root user', () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    expect(dockerfile.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
  });
});

describe('deploy/prometheus/alerts.yml', () => {
  const rules = (
    parse(readFileSync('deploy/prometheus/alerts.yml', 'utf8')) as {
      groups: { rules: { alert: string; expr: string; labels: { severity: string } }[] }[];
    }
  ).groups.flatMap((g) => g.rules);
  const exported = exportedSeriesNames(serviceRegistry());

  it('covers memory, quarantine, failed jobs, latency and gateway 5xx', () => {
    const exprs = rules.map((r) => r.expr).join('\n');
    for (const metric of [
      'session_revoker_redis_memory_bytes',
      'session_revoker_quarantine_entries',
      'session_revoker_queue_jobs',
      'session_revoker_event_to_done_seconds_bucket',
      'session_revoker_http_request_duration_seconds_count',
    ])
      expect(exprs).toContain(metric);
  });

  it.each(rules.map((r) => [r.alert, r] as const))(
    '%s parses as PromQL and names exported metrics',
    (_name, rule) => {
      expect(rule.labels.severity).toMatch(/^(warning|critical)$/);
      const { errors, metricNames } = parsePromQL(rule.expr);
      expect(errors).toEqual([]);
      expect(metricNames.length).toBeGreaterThan(0);
      for (const name of metricNames) expect(exported).toContain(name);
    },
  );
});
