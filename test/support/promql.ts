import { parser } from '@prometheus-io/lezer-promql';
import type { Registry } from 'prom-client';
import { RevokerMetrics } from '#metrics';

/** What one PromQL expression is made of, as the Prometheus UI's own parser reads it. */
export interface ParsedPromQL {
  /** The text of every error node: empty when the expression is valid PromQL. */
  errors: string[];
  /** Every metric name a selector names (`foo{...}` or `{__name__="foo"}`), once each. */
  metricNames: string[];
}

/** Parses `expr` with @prometheus-io/lezer-promql and collects its errors and the metric names it selects. */
export function parsePromQL(expr: string): ParsedPromQL {
  const errors: string[] = [];
  const names = new Set<string>();
  parser.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError)
        errors.push(`at ${node.from}: ${JSON.stringify(expr.slice(node.from, node.to + 10))}`);
      else if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector')
        names.add(expr.slice(node.from, node.to));
      else if (node.name === 'UnquotedLabelMatcher') {
        const label = node.node.getChild('LabelName');
        const op = node.node.getChild('MatchOp');
        const value = node.node.getChild('StringLiteral');
        if (label && value && expr.slice(label.from, label.to) === '__name__') {
          if (op?.getChild('EqlSingle')) names.add(JSON.parse(expr.slice(value.from, value.to)) as string);
          // A regex or negative match on the name cannot be checked against the exported names.
          else errors.push(`at ${node.from}: __name__ must be matched with =`);
        }
      }
    },
  });
  return { errors, metricNames: [...names] };
}

/**
 * Grafana's interval variables, which are not PromQL: replaced by a duration before parsing. Other
 * variables are not expected in the dashboard's queries (the datasource is chosen outside them).
 */
export function grafanaToPromQL(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g, '5m');
}

/**
 * The series names a registry's metrics appear under in a scrape: a counter's own name (which by our
 * convention, checked by the tests, ends in `_total`), a gauge's name, a histogram's `_bucket`, `_sum` and
 * `_count`, a summary's name (its quantiles), `_sum` and `_count`.
 */
export function exportedSeriesNames(registry: Registry): Set<string> {
  const names = new Set<string>();
  for (const metric of registry.getMetricsAsArray()) {
    // prom-client's typings give `type` as a numeric enum; at run time it is the exposition's word.
    const type = String(metric.type as unknown);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(metric.name + s);
    else names.add(metric.name);
  }
  return names;
}

/** The metrics the service's processes export (both mains enable the default Node.js metrics). */
export function serviceRegistry(): Registry {
  return new RevokerMetrics({ defaultMetrics: true }).registry;
}
