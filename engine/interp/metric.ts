/** Metrics of a run's last-position logits, for patching and the gradient methods. */
import type { Model } from "../model.ts";
import { InputError } from "../errors.ts";
import { tokenId } from "../analysis/tokens.ts";

/**
 * A number computed from the logits of the last position ([vocab]); larger means "more like the clean run". The
 * gradient methods also need d metric / d logits: a metric may carry it as `gradient`, else it is taken by central
 * differences over the vocabulary (vocabularies of up to MAX_NUMERIC_VOCAB tokens).
 */
export type Metric = ((lastLogits: Float32Array) => number) & { gradient?: (lastLogits: Float32Array) => Float32Array };

const MAX_NUMERIC_VOCAB = 4096;

/** logit(good) − logit(bad) (tokens as ids or one-token texts), with its gradient. */
export function logitDifference(model: Model, good: number | string, bad: number | string): Metric {
  const [g, b] = [tokenId(model, good), tokenId(model, bad)];
  const metric = (logits: Float32Array) => logits[g] - logits[b];
  return Object.assign(metric, {
    gradient: (logits: Float32Array) => {
      const d = new Float32Array(logits.length);
      d[g] += 1;
      d[b] -= 1;
      return d;
    },
  });
}

/** d metric / d logits at `logits`: the metric's own gradient, or central differences (step 1e-2, in f32 logits). */
export function metricGradient(metric: Metric, logits: Float32Array): Float32Array {
  if (metric.gradient) {
    const g = metric.gradient(logits);
    if (!(g instanceof Float32Array) || g.length !== logits.length) throw new InputError(`the metric's gradient must be a Float32Array of ${logits.length} values`);
    return g;
  }
  if (logits.length > MAX_NUMERIC_VOCAB) {
    throw new InputError(`the metric has no gradient and the vocabulary (${logits.length}) is too large to take it numerically: give the metric a gradient (see logitDifference)`);
  }
  const h = 1e-2;
  const x = logits.slice();
  const g = new Float32Array(logits.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h;
    const up = metric(x);
    x[i] = v - h;
    const down = metric(x);
    x[i] = v;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
