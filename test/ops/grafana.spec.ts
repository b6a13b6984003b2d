import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { exportedSeriesNames, grafanaToPromQL, parsePromQL, serviceRegistry } from '../support/promql.js';

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync('deploy/grafana/session-revoker.json', 'utf8')) as {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels: Panel[];
  templating: { list: { type: string; name: string; query?: string }[] };
};

/** Every panel, including those inside collapsed rows. */
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const targets = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', ...t })));
const exported = exportedSeriesNames(serviceRegistry());
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

describe('the PromQL helper', () => {
  it('finds the metric names a query selects and reports what does not parse', () => {
    expect(
      parsePromQL(
        'histogram_quantile(0.9, sum by (le, role) (rate(a_bucket{x="y"}[5m]))) / on (role) {__name__="b"} > 0',
      ),
    ).toEqual({ errors: [], metricNames: ['a_bucket', 'b'] });
    expect(parsePromQL('sum(rate(a[$__rate_interval]))').errors.length).toBeGreaterThan(0);
    expect(parsePromQL(grafanaToPromQL('sum(rate(a[$__rate_interval]))'))).toEqual({
      errors: [],
      metricNames: ['a'],
    });
    expect(parsePromQL('sum(rate(a[5m])').errors.length).toBeGreaterThan(0);
  });

  it('knows the series names of each metric type, and every counter ends in _total', () => {
    expect(exported).toContain('session_revoker_event_to_done_seconds_bucket');
    expect(exported).toContain('session_revoker_event_to_done_seconds_count');
    expect(exported).toContain('session_revoker_event_to_done_seconds_sum');
    expect(exported).not.toContain('session_revoker_event_to_done_seconds');
    expect(exported).toContain('session_revoker_queue_jobs');
    for (const m of serviceRegistry().getMetricsAsArray())
      if (String(m.type as unknown) === 'counter') expect(m.name).toMatch(/_total$/);
  });
});

describe('deploy/grafana/session-revoker.json', () => {
  it('is a dashboard with a uid, a title and a Prometheus datasource variable', () => {
    expect(dashboard.uid).toBe('session-revoker');
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ type: 'datasource', name: 'datasource', query: 'prometheus' }),
    );
  });

  it('gives every panel a title and an id of its own', () => {
    for (const p of allPanels) expect(p.title?.trim()).toBeTruthy();
    const ids = allPanels.map((p) => p.id);
    for (const id of ids) expect(Number.isInteger(id)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('reads every panel and query from the datasource variable', () => {
    expect(queryPanels.length).toBeGreaterThan(10);
    for (const p of queryPanels) {
      expect({ panel: p.title, datasource: p.datasource }).toEqual({
        panel: p.title,
        datasource: DATASOURCE,
      });
      expect(p.targets?.length).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const t of p.targets!) expect(t.datasource ?? DATASOURCE).toEqual(DATASOURCE);
    }
  });

  it('lays the panels out on the 24-column grid without overlaps', () => {
    const boxes = dashboard.panels.map((p) => ({ title: p.title, ...p.gridPos! }));
    for (const b of boxes) {
      expect(b.w).toBeGreaterThan(0);
      expect(b.x + b.w).toBeLessThanOrEqual(24);
    }
    for (const [i, a] of boxes.entries())
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect({ a: a.title, b: b.title, overlap }).toEqual({ a: a.title, b: b.title, overlap: false });
      }
  });

  it.each(targets.map((t) => [`${t.panel} ${t.refId}`, t] as const))(
    '%s parses as PromQL and names exported metrics',
    (_name, target) => {
      expect(target.expr).toBeTruthy();
      const { errors, metricNames } = parsePromQL(grafanaToPromQL(target.expr!));
      expect(errors).toEqual([]);
      expect(metricNames.length).toBeGreaterThan(0);
      for (const name of metricNames) expect(exported).toContain(name);
    },
  );

  it('charts what an operator watches', () => {
    const used = new Set(targets.flatMap((t) => parsePromQL(grafanaToPromQL(t.expr ?? '')).metricNames));
    for (const name of [
      'session_revoker_events_received_total',
      'session_revoker_received_to_done_seconds_bucket',
      'session_revoker_event_to_done_seconds_bucket',
      'session_revoker_jobs_total',
      'session_revoker_queue_jobs',
      'session_revoker_sessions_revoked_total',
      'session_revoker_quarantine_entries',
      'session_revoker_redis_memory_bytes',
      'session_revoker_token_verifications_total',
      'session_revoker_token_cache_lookups_total',
      'session_revoker_token_idp_calls_total',
      'session_revoker_token_singleflight_waits_total',
      'session_revoker_http_request_duration_seconds_count',
      'session_revoker_http_request_duration_seconds_bucket',
      'session_revoker_admin_auth_failures_total',
      'session_revoker_receipt_stamps_total',
    ])
      expect(used).toContain(name);
    const exprs = targets.map((t) => t.expr ?? '').join('\n');
    expect(exprs).toMatch(/histogram_quantile\(0\.5, .*received_to_done_seconds_bucket/);
    expect(exprs).toMatch(/histogram_quantile\(0\.99, .*received_to_done_seconds_bucket/);
    expect(exprs).toMatch(/session_revoker_redis_memory_bytes\{kind="max"\}/);
  });
});
