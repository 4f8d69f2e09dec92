// parse-prometheus-text-format ships no types; its output follows prom2json.
// @ts-expect-error untyped module
import parse from 'parse-prometheus-text-format';

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  readonly metrics: readonly { readonly value?: string; readonly labels?: Record<string, string>; readonly count?: string; readonly sum?: string; readonly buckets?: Record<string, string> }[];
}

/** One sample line of the text format (https://prometheus.io/docs/instrumenting/exposition_formats/). */
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*,?\})? (?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|NaN|[-+]Inf)(?: -?\d+)?$/;

/** Parses Prometheus text strictly: every line a comment, blank, or a well-formed sample. */
export function parsePrometheus(text: string): Family[] {
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    if (!SAMPLE.test(line)) throw new Error(`line ${i + 1} is not a Prometheus sample: ${line}`);
  });
  return (parse as (text: string) => Family[])(text);
}

/** The value of one series, or undefined; labels must match exactly those given. */
export function sample(families: readonly Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const metric = family?.metrics.find((m) => {
    const own = m.labels ?? {};
    return Object.keys(own).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => own[k] === v);
  });
  const value = metric?.value ?? metric?.count;
  return value === undefined ? undefined : Number(value);
}
