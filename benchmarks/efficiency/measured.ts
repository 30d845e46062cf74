// The shape of Figure 1's claim measured on our engine at small scale: decode time per token of each attention
// sublayer, and its decoding memory, as the context grows. Lightning layers should stay flat (a constant d×d
// state per head); the softmax layer should grow linearly (it reads and stores K/V for every position).
// Times come from hooks around each attention sublayer (ln1 output → attention output) during cached decode.
import type { Table } from "apache-arrow";
import type { Model } from "../../engine/model.ts";
import { Rng } from "../../engine/sampling.ts";
import { InputError } from "../../engine/errors.ts";
import { DISPLAY, arrowTableBundle, plotlyBundle, type MimeBundle, type PlotlyFigure } from "../../engine/display.ts";
import { columnsTable } from "../arrow.ts";

export interface ScalingOptions {
  /** context lengths to decode at (default 256, 512, 1024, 2048 and max_position_embeddings − steps) */
  contexts?: number[];
  /** decode steps timed per context (default 32) */
  steps?: number;
  seed?: number;
  signal?: AbortSignal;
}

export interface LayerMeasurement {
  context: number;
  layer: number;
  type: "lightning" | "softmax";
  /** median over the timed steps */
  microsPerToken: number;
  /** this layer's decoding state after the context (K/V for softmax, S for lightning), bytes */
  stateBytes: number;
}

export async function measureContextScaling(model: Model, options: ScalingOptions = {}): Promise<ContextScaling> {
  const cfg = model.config;
  const steps = options.steps ?? 32;
  const limit = cfg.maxPositionEmbeddings - steps;
  const contexts = options.contexts ?? [...[256, 512, 1024, 2048].filter((t) => t < limit), limit];
  if (!(Number.isInteger(steps) && steps >= 1)) throw new InputError(`steps must be an integer >= 1, got ${steps}`);
  const tooLong = contexts.find((t) => !(Number.isInteger(t) && t >= 1 && t <= limit));
  if (tooLong !== undefined) throw new InputError(`context ${tooLong} is not in [1, ${limit}] (max_position_embeddings ${cfg.maxPositionEmbeddings} minus ${steps} steps)`);
  const rng = new Rng(options.seed ?? 0);
  const token = () => Math.floor(rng.next() * cfg.vocabSize);
  const rows: LayerMeasurement[] = [];
  const warmup = model.newCache(); // first calls pay for weight conversion and allocation: keep them out of the timings
  await model.forward(Array.from({ length: 16 }, token), { cache: warmup, logits: "none" });
  for (let s = 0; s < 16; s++) await model.forward([token()], { cache: warmup, logits: "last" });
  for (const context of contexts) {
    const cache = model.newCache();
    await model.forward(Array.from({ length: context }, token), { cache, logits: "none", signal: options.signal });
    const samples = cfg.layerTypes.map(() => [] as number[]);
    const started = new Array<number>(cfg.numLayers).fill(0);
    const hooks = cfg.layerTypes.flatMap((_, l) => [
      [`blocks.${l}.ln1.hook_normalized`, (): void => void (started[l] = performance.now())] as const,
      [`blocks.${l}.hook_attn_out`, (): void => void samples[l].push(performance.now() - started[l])] as const,
    ]);
    await model.hooks.with(hooks, async () => {
      for (let s = 0; s < steps; s++) await model.forward([token()], { cache, logits: "last", signal: options.signal });
    });
    cfg.layerTypes.forEach((type, l) => {
      const stateBytes = type === "lightning" ? cache.lightning[l]!.byteLength : cache.kv[l]!.bytes;
      rows.push({ context, layer: l, type, microsPerToken: 1000 * median(samples[l]), stateBytes });
    });
  }
  return new ContextScaling(rows, steps);
}

export class ContextScaling {
  constructor(readonly rows: LayerMeasurement[], readonly steps: number) {}

  /** One row per (context, layer). */
  table(): Table {
    return columnsTable({
      context: this.rows.map((r) => r.context),
      layer: this.rows.map((r) => r.layer),
      type: this.rows.map((r) => r.type),
      us_per_token: this.rows.map((r) => r.microsPerToken),
      state_bytes: this.rows.map((r) => r.stateBytes),
    });
  }

  /** Mean over the layers of each type, per context. */
  byType(): { context: number; type: string; microsPerToken: number; stateBytes: number }[] {
    const keys = [...new Set(this.rows.map((r) => `${r.context}|${r.type}`))];
    return keys.map((k) => {
      const [context, type] = k.split("|");
      const rs = this.rows.filter((r) => `${r.context}|${r.type}` === k);
      const avg = (f: (r: LayerMeasurement) => number) => rs.reduce((s, r) => s + f(r), 0) / rs.length;
      return { context: Number(context), type, microsPerToken: avg((r) => r.microsPerToken), stateBytes: avg((r) => r.stateBytes) };
    });
  }

  text(): string {
    const lines = [`Decode cost per attention sublayer vs context (median of ${this.steps} steps; mean over layers of a type):`];
    for (const r of this.byType()) lines.push(`  context ${String(r.context).padStart(6)}  ${r.type.padEnd(9)}  ${r.microsPerToken.toFixed(1).padStart(8)} µs/token  state ${(r.stateBytes / 1024).toFixed(1).padStart(8)} KiB per layer`);
    return lines.join("\n") + "\n";
  }

  figure(): PlotlyFigure {
    const byType = this.byType();
    const types = [...new Set(byType.map((r) => r.type))];
    const trace = (type: string, y: (r: (typeof byType)[number]) => number, axis: string) => {
      const rs = byType.filter((r) => r.type === type);
      return { type: "scatter", mode: "lines+markers", name: `${type} (${axis === "" ? "time" : "memory"})`, x: rs.map((r) => r.context), y: rs.map(y), xaxis: `x${axis}`, yaxis: `y${axis}` };
    };
    return {
      data: [...types.map((t) => trace(t, (r) => r.microsPerToken, "")), ...types.map((t) => trace(t, (r) => r.stateBytes / 1024, "2"))],
      layout: {
        title: { text: "Our engine: decode cost per attention layer vs context" },
        grid: { rows: 1, columns: 2, pattern: "independent" },
        xaxis: { title: { text: "context (tokens)" } },
        yaxis: { title: { text: "µs per token" } },
        xaxis2: { title: { text: "context (tokens)" } },
        yaxis2: { title: { text: "state per layer (KiB)" } },
      },
    };
  }

  [DISPLAY](): MimeBundle {
    const plot = plotlyBundle(this.figure());
    const table = arrowTableBundle(columnsTable({
      context: this.byType().map((r) => r.context),
      type: this.byType().map((r) => r.type),
      us_per_token: this.byType().map((r) => r.microsPerToken),
      state_bytes: this.byType().map((r) => r.stateBytes),
    }));
    return { ...table, ...plot, "text/html": `${plot["text/html"]}${table["text/html"]}`, "text/plain": this.text() };
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
