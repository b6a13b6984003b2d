import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/**
 * The proxy configurations in deploy/ (no Traefik or Envoy here: checked by parsing) against the
 * forward-auth module itself: its path and the headers it sets are read from its source text, so a
 * renamed header or path fails here until every proxy passes the new one.
 */
const source = readFileSync('apps/gateway/src/edge/forward-auth.ts', 'utf8');
const VERIFY_PATH = /export const FORWARD_AUTH_PATH = '([^']+)'/.exec(source)?.[1] ?? '';
const SET_HEADERS = [...source.matchAll(/reply\.header\(\s*'(X-Auth-Request-[A-Za-z-]+)'/g)].map(
  (m) => m[1]!,
);
/** Only with EDGE_PASS_ACCESS_TOKEN=true, and only where an operator opts in. */
const ACCESS_TOKEN = 'X-Auth-Request-Access-Token';
const IDENTITY = SET_HEADERS.filter((h) => h !== ACCESS_TOKEN);

const lower = (names: readonly string[]) => names.map((n) => n.toLowerCase()).sort();

describe('the forward-auth module, as these checks read it', () => {
  it('has a verify path and the oauth2-proxy identity headers, plus the opt-in access token', () => {
    expect(VERIFY_PATH).toBe('/auth/verify');
    expect(SET_HEADERS).toContain(ACCESS_TOKEN);
    expect(IDENTITY).toEqual(
      expect.arrayContaining(['X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Auth-Request-Groups']),
    );
    expect(new Set(SET_HEADERS).size).toBe(SET_HEADERS.length);
  });
});

interface TraefikRouter {
  entryPoints?: string[];
  rule: string;
  priority?: number;
  middlewares?: string[];
  service: string;
}
interface TraefikMiddleware {
  forwardAuth?: {
    address: string;
    trustForwardHeader?: boolean;
    preserveLocationHeader?: boolean;
    authRequestHeaders?: string[];
    authResponseHeaders?: string[];
    authResponseHeadersRegex?: string;
  };
  headers?: { customRequestHeaders?: Record<string, string> };
}
interface TraefikDynamic {
  http: {
    middlewares: Record<string, TraefikMiddleware>;
    routers: Record<string, TraefikRouter>;
    services: Record<string, { loadBalancer: { servers: { url: string }[] } }>;
  };
}

describe('deploy/traefik', () => {
  const dynamic = parse(readFileSync('deploy/traefik/dynamic.yml', 'utf8')) as TraefikDynamic;
  const staticConfig = parse(readFileSync('deploy/traefik/traefik.yml', 'utf8')) as {
    entryPoints: Record<string, { address: string }>;
    providers: { file: { filename: string } };
  };
  const { middlewares, routers, services } = dynamic.http;
  const forwardAuthNames = Object.keys(middlewares).filter((n) => middlewares[n]!.forwardAuth);
  const forwardAuth = middlewares[forwardAuthNames[0]!]!.forwardAuth!;
  const address = new URL(forwardAuth.address);
  const serviceAt = (origin: string) =>
    Object.keys(services).filter((s) =>
      services[s]!.loadBalancer.servers.every((server) => new URL(server.url).origin === origin),
    );
  const [gatewayService] = serviceAt(address.origin);
  const authRouters = Object.values(routers).filter((r) => r.rule.includes('PathPrefix(`/auth/`)'));
  const appRouters = Object.values(routers).filter((r) =>
    r.middlewares?.some((m) => forwardAuthNames.includes(m)),
  );

  it('asks the gateway at its verify path, with the login redirect, computing X-Forwarded-* itself', () => {
    expect(forwardAuthNames).toHaveLength(1);
    expect(address.pathname).toBe(VERIFY_PATH);
    expect(address.searchParams.get('redirect')).toBe('true');
    expect(gatewayService).toBeDefined();
    expect(forwardAuth.trustForwardHeader).toBe(false);
    // The gateway's Location is relative: Traefik must not prefix it with its own address.
    expect(forwardAuth.preserveLocationHeader).toBe(true);
    expect(lower(forwardAuth.authRequestHeaders ?? [])).toEqual(
      expect.arrayContaining(['accept', 'authorization', 'cookie']),
    );
  });

  it("passes exactly the module's identity headers upstream, and never a client's own access token", () => {
    expect(lower(forwardAuth.authResponseHeaders!)).toEqual(lower(IDENTITY));
    expect(forwardAuth.authResponseHeadersRegex).toBeUndefined();
    // Not in authResponseHeaders, so Traefik would let a client's X-Auth-Request-Access-Token through.
    expect(appRouters.length).toBeGreaterThan(0);
    for (const router of appRouters) {
      const cleared = router.middlewares!.some((m) => {
        const headers = middlewares[m]?.headers?.customRequestHeaders ?? {};
        return Object.entries(headers).some(([k, v]) => k.toLowerCase() === ACCESS_TOKEN.toLowerCase() && !v);
      });
      expect(cleared).toBe(true);
    }
  });

  it('sends /auth/ to the gateway without forward auth, ahead of the application router', () => {
    expect(authRouters).toHaveLength(1);
    const [auth] = authRouters;
    expect(auth!.service).toBe(gatewayService);
    expect(auth!.middlewares ?? []).not.toEqual(expect.arrayContaining(forwardAuthNames));
    for (const app of appRouters) {
      expect(app.service).not.toBe(gatewayService);
      expect(auth!.priority!).toBeGreaterThan(app.priority ?? 0);
    }
  });

  it('refers only to services, middlewares and entrypoints that exist, and loads the dynamic file', () => {
    for (const router of Object.values(routers)) {
      expect(Object.keys(services)).toContain(router.service);
      for (const m of router.middlewares ?? []) expect(Object.keys(middlewares)).toContain(m);
      for (const e of router.entryPoints ?? []) expect(Object.keys(staticConfig.entryPoints)).toContain(e);
    }
    expect(staticConfig.providers.file.filename).toBe('deploy/traefik/dynamic.yml');
  });
});

interface StringMatcher {
  exact?: string;
  ignore_case?: boolean;
  [other: string]: unknown;
}
interface ListStringMatcher {
  patterns: StringMatcher[];
}
interface HttpFilter {
  name: string;
  typed_config: Record<string, unknown> & { '@type': string };
}
interface ExtAuthz {
  '@type': string;
  failure_mode_allow?: boolean;
  status_on_error?: { code: string };
  allowed_headers?: ListStringMatcher;
  http_service: {
    server_uri: { uri: string; cluster: string; timeout: string };
    path_prefix: string;
    authorization_request?: { allowed_headers?: ListStringMatcher };
    authorization_response: { allowed_upstream_headers: ListStringMatcher };
  };
}
interface EnvoyRoute {
  match: { prefix?: string; path?: string };
  route: { cluster: string };
  typed_per_filter_config?: Record<string, { '@type': string; disabled?: boolean }>;
}
interface Hcm {
  normalize_path?: boolean;
  route_config: { virtual_hosts: { name: string; routes: EnvoyRoute[] }[] };
  http_filters: HttpFilter[];
}
interface EnvoyConfig {
  static_resources: {
    listeners: { filter_chains: { filters: { name: string; typed_config: Hcm }[] }[] }[];
    clusters: {
      name: string;
      load_assignment: {
        cluster_name: string;
        endpoints: {
          lb_endpoints: {
            endpoint: { address: { socket_address: { address: string; port_value: number } } };
          }[];
        }[];
      };
    }[];
  };
}

const EXT_AUTHZ = 'envoy.filters.http.ext_authz';
/** Exact names a matcher list accepts, lower-cased (HTTP/2 and Envoy keep header names lower-case). */
const exactNames = (list: ListStringMatcher | undefined) =>
  (list?.patterns ?? []).map((p) => {
    expect(Object.keys(p).filter((k) => k !== 'ignore_case')).toEqual(['exact']);
    return p.exact!.toLowerCase();
  });

describe('deploy/envoy/envoy.yaml', () => {
  const envoy = parse(readFileSync('deploy/envoy/envoy.yaml', 'utf8')) as EnvoyConfig;
  const { listeners, clusters } = envoy.static_resources;
  const hcms = listeners.flatMap((l) => l.filter_chains.flatMap((c) => c.filters.map((f) => f.typed_config)));
  const [hcm] = hcms;
  const filters = hcm!.http_filters;
  const extAuthzAt = filters.findIndex((f) => f.name === EXT_AUTHZ);
  const extAuthz = filters[extAuthzAt]!.typed_config as unknown as ExtAuthz;
  const routes = hcm!.route_config.virtual_hosts.flatMap((v) => v.routes);
  const clusterNames = clusters.map((c) => c.name);
  const gateway = extAuthz.http_service.server_uri.cluster;

  it('checks every request at the verify path on the gateway cluster, failing closed with a 503', () => {
    expect(hcms).toHaveLength(1);
    expect(extAuthz['@type']).toBe('type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
    expect(clusterNames).toContain(gateway);
    // Envoy appends the original path: /auth/verify/<path>, served by the gateway's /auth/verify/* route.
    expect(extAuthz.http_service.path_prefix).toBe(VERIFY_PATH);
    expect(source).toContain('url: `${FORWARD_AUTH_PATH}/*`');
    const uri = new URL(extAuthz.http_service.server_uri.uri);
    const endpoint = clusters.find((c) => c.name === gateway)!.load_assignment.endpoints[0]!.lb_endpoints[0]!
      .endpoint.address.socket_address;
    expect([uri.hostname, Number(uri.port)]).toEqual([endpoint.address, endpoint.port_value]);
    expect(extAuthz.failure_mode_allow).toBe(false);
    expect(extAuthz.status_on_error).toEqual({ code: 'ServiceUnavailable' });
    expect(filters[filters.length - 1]!.name).toBe('envoy.filters.http.router');
    expect(hcm!.normalize_path).toBe(true);
  });

  it('sends the cookie, the Authorization header and Accept to the gateway, and no X-Forwarded-Uri', () => {
    const filterLevel = extAuthz.allowed_headers;
    const deprecated = extAuthz.http_service.authorization_request?.allowed_headers;
    // Envoy refuses a configuration with both.
    expect([filterLevel, deprecated].filter(Boolean)).toHaveLength(1);
    const allowed = exactNames(filterLevel ?? deprecated);
    expect(allowed).toEqual(expect.arrayContaining(['cookie', 'authorization', 'accept']));
    expect(allowed).not.toContain('x-forwarded-uri');
    expect(allowed).not.toContain('x-original-uri');
  });

  it("passes exactly the module's identity headers upstream, after removing any a client sent", () => {
    expect(exactNames(extAuthz.http_service.authorization_response.allowed_upstream_headers).sort()).toEqual(
      lower(IDENTITY),
    );
    const mutationAt = filters.findIndex((f) => f.name === 'envoy.filters.http.header_mutation');
    expect(mutationAt).toBeGreaterThanOrEqual(0);
    expect(mutationAt).toBeLessThan(extAuthzAt);
    const mutations = filters[mutationAt]!.typed_config['mutations'] as {
      request_mutations: { remove?: string }[];
    };
    const removed = mutations.request_mutations.map((m) => m.remove?.toLowerCase());
    expect(removed).toEqual(expect.arrayContaining(lower(SET_HEADERS)));
  });

  it('routes /auth/ to the gateway with ext_authz disabled, everything else to the app through it', () => {
    const auth = routes.filter((r) => r.match.prefix === '/auth/');
    expect(auth).toHaveLength(1);
    expect(auth[0]!.route.cluster).toBe(gateway);
    expect(auth[0]!.typed_per_filter_config?.[EXT_AUTHZ]).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
      disabled: true,
    });
    // First match wins: /auth/ before the catch-all.
    const catchAll = routes.findIndex((r) => r.match.prefix === '/');
    expect(routes.indexOf(auth[0]!)).toBeLessThan(catchAll);
    const app = routes[catchAll]!;
    expect(app.route.cluster).not.toBe(gateway);
    expect(app.typed_per_filter_config?.[EXT_AUTHZ]).toBeUndefined();
  });

  it('defines every cluster it refers to', () => {
    for (const r of routes) expect(clusterNames).toContain(r.route.cluster);
    for (const c of clusters) expect(c.load_assignment.cluster_name).toBe(c.name);
    expect(new Set(clusterNames).size).toBe(clusterNames.length);
  });
});

describe('deploy/nginx/nginx.conf (read only: auth_request)', () => {
  const conf = readFileSync('deploy/nginx/nginx.conf', 'utf8').replace(/#.*$/gm, '');

  it("asks the gateway at the verify path and passes exactly the module's identity headers", () => {
    const subrequest = /\bauth_request\s+(\S+);/.exec(conf)?.[1];
    expect(subrequest).toBeDefined();
    const block = conf.slice(conf.indexOf(`location = ${subrequest!} {`));
    const upstream = /\bproxy_pass\s+(\S+);/.exec(block.slice(0, block.indexOf('}')))?.[1];
    expect(new URL(upstream!).pathname).toBe(VERIFY_PATH);

    const fromAnswer = [...conf.matchAll(/\bauth_request_set\s+\$(\w+)\s+\$upstream_http_(\w+);/g)];
    const passed = fromAnswer.map((m) => m[2]!.replace(/_/g, '-'));
    expect(passed.sort()).toEqual(lower(IDENTITY));
    // Each is set on the upstream request from the answer's variable, so a client's own never passes.
    for (const [, variable, header] of fromAnswer) {
      const name = header!.replace(/_/g, '-');
      expect(conf).toMatch(new RegExp(`proxy_set_header\\s+${name}\\s+\\$${variable};`, 'i'));
    }
  });
});
