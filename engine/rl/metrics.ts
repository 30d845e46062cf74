/** Training metrics as an Arrow table (one row per step) and as plotly figures. */
import { tableFromArrays, type Table } from "apache-arrow";
import { Figure } from "../figure.ts";
import { RATIO_BINS, type StepMetrics } from "./train.ts";

/** The scalar metrics per step, plus the time split; the IS-ratio histogram is `ratioTable`. */
export function metricsTable(metrics: readonly StepMetrics[], run = ""): Table {
  const col = (f: (m: StepMetrics) => number) => Float64Array.from(metrics, f);
  return tableFromArrays({
    run: metrics.map(() => run),
    step: Int32Array.from(metrics, (m) => m.step),
    budget: Int32Array.from(metrics, (m) => m.budget),
    loss: col((m) => m.loss),
    reward: col((m) => m.reward),
    accuracy: col((m) => m.accuracy),
    response_length: col((m) => m.responseLength),
    clip_fraction: col((m) => m.clipFraction),
    kept_groups: col((m) => m.keptGroups),
    truncated: col((m) => m.truncated),
    entropy: col((m) => m.entropy),
    grad_norm: col((m) => m.gradNorm),
    lr: col((m) => m.lr),
    rollout_s: col((m) => m.seconds.rollout),
    logprobs_s: col((m) => m.seconds.logprobs),
    backward_s: col((m) => m.seconds.backward),
    optimiser_s: col((m) => m.seconds.optimiser),
  });
}

/** The IS-ratio histogram: one row per (step, bin), the bin's upper edge and its token count. */
export function ratioTable(metrics: readonly StepMetrics[]): Table {
  const rows = metrics.flatMap((m) => m.ratioHistogram.map((count, b) => ({ step: m.step, upper: RATIO_BINS[b], count })));
  return tableFromArrays({
    step: Int32Array.from(rows, (r) => r.step),
    upper: Float64Array.from(rows, (r) => r.upper),
    count: Float64Array.from(rows, (r) => r.count),
  });
}

/** One line per run of one metric against the step. */
export function metricFigure(runs: Record<string, readonly StepMetrics[]>, metric: keyof Omit<StepMetrics, "ratioHistogram" | "ppoDropped" | "seconds">, title = String(metric)): Figure {
  const data = Object.entries(runs).map(([name, ms]) => ({ type: "scatter", mode: "lines+markers", name, x: ms.map((m) => m.step), y: ms.map((m) => m[metric]) }));
  return new Figure(data, { xaxis: { title: { text: "step" } }, yaxis: { title: { text: String(metric) } } }, title);
}
