/**
 * Activation patching between a clean and a corrupted prompt of the same length — one pair, or a dataset of pairs
 * (prompts of different lengths from pair to pair, each pair with its own metric if it likes): run the corrupted
 * prompt, copy one piece of the clean run's activations into it, and measure how far a metric of the last position's
 * logits moves back towards the clean value. Sweeps cover (layer × position) of any hook point, (layer × head) of the
 * softmax and lightning heads, (layer × expert) of the MoE, and the lightning state S after a position; over many
 * pairs they give each pair's grid and their mean (PatchingResult).
 *
 * A patch at position p leaves positions before p as they were, so every patched run starts from the corrupted
 * run's cache after p tokens and runs only the rest; the runs of a sweep, of every pair, are packed into a few
 * batched passes. A patch that writes the values already there (a position before the prompts differ) is not run:
 * its metric is the corrupted run's.
 */
import type { Model } from "../model.ts";
import type { ModelCache } from "../cache.ts";
import { hookNames, type ActivationCache, type HookContext, type HookFn } from "../hooks.ts";
import type { Tensor } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { tokenLabels } from "../analysis/tokens.ts";
import { PatchingResult, type GridAxes } from "./result.ts";
import { expertContributions } from "./experts.ts";
import type { Metric } from "./metric.ts";
import { passes } from "./passes.ts";

type Prompt = ArrayLike<number> | string;

/** A clean and a corrupted prompt of the same length; `metric` when this pair needs its own (e.g. its own answer tokens). */
export interface PromptPair {
  readonly clean: Prompt;
  readonly corrupted: Prompt;
  readonly metric?: Metric;
}

/** One pair's two runs: its tokens, metric, every activation, and the corrupted run's cache after every prefix. */
export class PatchingPair {
  readonly tokens: number;
  readonly labels: string[];
  /** first position where the prompts differ: patches of whole hooks start there (before it the runs are equal) */
  readonly firstDifference: number;

  constructor(
    readonly cleanIds: number[],
    readonly corruptedIds: number[],
    readonly metric: Metric,
    /** every activation of the clean and of the corrupted run, by hook name */
    readonly cleanActs: ReadonlyMap<string, Tensor>,
    readonly corruptActs: ReadonlyMap<string, Tensor>,
    /** the corrupted run's caches after p tokens, p = 0 .. n-1 */
    readonly corruptPrefix: readonly ModelCache[],
    /** the metric on the clean and on the corrupted run */
    readonly clean: number,
    readonly corrupted: number,
    labels: string[],
  ) {
    this.tokens = cleanIds.length;
    this.labels = labels;
    const diff = cleanIds.findIndex((id, i) => id !== corruptedIds[i]);
    this.firstDifference = diff < 0 ? this.tokens : diff;
  }
}

/** One patched run: its pair, where it starts and from which cache (cloned when it runs), what it changes there
 *  before it runs, and the edits its hooks make to its own rows. */
interface PatchedRun {
  readonly pair: PatchingPair;
  readonly start: number;
  readonly from: ModelCache;
  readonly prepare?: (cache: ModelCache) => void;
  /** hook name → edit of this run's rows of that hook's value (row 0 = position `start`) */
  readonly edits: ReadonlyMap<string, (rows: Float32Array, rowWidth: number) => void>;
}

/** A cell of a sweep for one pair: a run, a patch that changes nothing, or no such cell (a position past its end). */
type Cell = PatchedRun | "unchanged" | null;

/** Rows of one batched pass (enough to keep each pass's intermediates in cache). */
const ROWS_PER_PASS = 2048;

export class ActivationPatching {
  /** tokens of the longest pair (the position axis of a sweep) */
  readonly tokens: number;
  /** per position: its token label where every pair that has the position agrees, else the position */
  readonly labels: string[];
  /** the mean metric over the pairs' clean and corrupted runs */
  readonly clean: number;
  readonly corrupted: number;
  /** the clean runs' caches after every prefix, made by the first lightning-state sweep */
  private cleanPrefix: ModelCache[][] | null = null;

  private constructor(readonly model: Model, readonly pairs: readonly PatchingPair[]) {
    this.tokens = Math.max(...pairs.map((p) => p.tokens));
    this.labels = Array.from({ length: this.tokens }, (_, p) => {
      const labels = new Set(pairs.filter((x) => p < x.tokens).map((x) => x.labels[p]));
      return labels.size === 1 ? [...labels][0] : String(p);
    });
    this.clean = pairs.reduce((s, p) => s + p.clean, 0) / pairs.length;
    this.corrupted = pairs.reduce((s, p) => s + p.corrupted, 0) / pairs.length;
  }

  /**
   * Runs every prompt once (every activation recorded; all of them packed into batched passes) and keeps the
   * corrupted runs' caches after every prefix. One pair: (model, clean, corrupted, metric); a dataset:
   * (model, [{ clean, corrupted, metric? }, ...], metric?), where a pair's own metric overrides the shared one.
   */
  static async prepare(model: Model, clean: Prompt, corrupted: Prompt, metric: Metric): Promise<ActivationPatching>;
  static async prepare(model: Model, pairs: readonly PromptPair[], metric?: Metric): Promise<ActivationPatching>;
  static async prepare(model: Model, first: Prompt | readonly PromptPair[], second?: Prompt | Metric, third?: Metric): Promise<ActivationPatching> {
    const many = Array.isArray(first) && (second === undefined || typeof second === "function");
    const list: readonly PromptPair[] = many ? first as readonly PromptPair[] : [{ clean: first as Prompt, corrupted: second as Prompt, metric: third }];
    const shared = many ? second as Metric | undefined : third;
    if (list.length === 0) throw new InputError("activation patching: no prompt pairs given");
    const which = (i: number) => (many ? `activation patching, pair ${i}` : "activation patching");
    const encoded = list.map((pair, i) => {
      if (typeof pair !== "object" || pair === null || !("clean" in pair) || !("corrupted" in pair)) throw new InputError(`${which(i)}: a pair is { clean, corrupted, metric? }`);
      const metric = pair.metric ?? shared;
      if (typeof metric !== "function") throw new InputError(`${which(i)}: no metric (give one to prepare or to the pair)`);
      const [cleanIds, corruptedIds] = [Array.from(model.promptIds(pair.clean)), Array.from(model.promptIds(pair.corrupted))];
      if (cleanIds.length !== corruptedIds.length) {
        throw new InputError(`${which(i)} needs prompts of the same length: the clean prompt has ${cleanIds.length} tokens, the corrupted one ${corruptedIds.length}`);
      }
      if (cleanIds.length < 1) throw new InputError(`${which(i)}: the prompts are empty`);
      if (cleanIds.every((id, t) => id === corruptedIds[t])) throw new InputError(`${which(i)}: the clean and the corrupted prompt are the same tokens`);
      return { cleanIds, corruptedIds, metric };
    });
    const sequences = encoded.flatMap((e) => [e.cleanIds, e.corruptedIds]);
    const { lastLogits, activations } = await recordAll(model, sequences);
    const values = encoded.map((e, i) => {
      const [clean, corrupted] = [e.metric(lastLogits[2 * i]), e.metric(lastLogits[2 * i + 1])];
      for (const [what, v] of [["clean", clean], ["corrupted", corrupted]] as const) {
        if (!Number.isFinite(v)) throw new InputError(`${which(i)}: the metric of the ${what} run is ${v}: it must return a finite number`);
      }
      if (clean === corrupted) throw new InputError(`${which(i)}: the metric is ${clean} on both runs: there is nothing for a patch to restore`);
      return { clean, corrupted };
    });
    const corruptPrefix = await prefixCaches(model, encoded.map((e) => e.corruptedIds));
    const pairs = encoded.map((e, i) => {
      const acts = [activations[2 * i], activations[2 * i + 1]].map((a) => new Map(a.names().map((name) => [name, a.get(name)])));
      return new PatchingPair(e.cleanIds, e.corruptedIds, e.metric, acts[0], acts[1], corruptPrefix[i], values[i].clean, values[i].corrupted, tokenLabels(model, e.corruptedIds));
    });
    return new ActivationPatching(model, pairs);
  }

  /**
   * (layer × position) of a hook point inside the blocks, e.g. "hook_resid_pre", "hook_attn_out",
   * "attn.hook_z", "lightning.hook_o", "moe.hook_router_logits": one patched run per layer that has it and position.
   */
  async positions(hook: string, options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const layers = this.layersWith(hook);
    const sources = new Map<PatchingPair, Map<number, { clean: Float32Array; corrupt: Float32Array; width: number }>>();
    for (const pair of this.pairs) {
      sources.set(pair, new Map(layers.map((l) => {
        const name = `blocks.${l}.${hook}`;
        const clean = pair.cleanActs.get(name)!;
        if (clean.shape[0] !== pair.tokens) throw new InputError(`"${name}" has ${clean.shape[0]} rows, not one per token: it cannot be patched by position`);
        return [l, { clean: clean.toFloat32(), corrupt: pair.corruptActs.get(name)!.toFloat32(), width: clean.numel / pair.tokens }];
      })));
    }
    return this.sweep(this.positionAxes(`Activation patching: blocks.{layer}.${hook}, one position at a time`, layers), (pair, l, p) => {
      if (p >= pair.tokens) return null;
      const { clean, corrupt, width } = sources.get(pair)!.get(l)!;
      const row = clean.subarray(p * width, (p + 1) * width);
      if (row.every((x, i) => x === corrupt[p * width + i])) return "unchanged";
      return this.run(pair, p, new Map([[`blocks.${l}.${hook}`, (rows) => rows.set(row)]]));
    }, options.signal);
  }

  /**
   * (layer × head): each head's output at every position copied from the clean run — the softmax layers' z
   * (before o_proj) and the lightning layers' o (before the norm, which then mixes heads as usual).
   */
  async heads(options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const { numHeads: nh, headDim: d, layerTypes } = this.model.config;
    return this.sweep(this.headAxes("Activation patching: each head's output at every position (softmax z, lightning o)"), (pair, l, h) => {
      const name = `blocks.${l}.${layerTypes[l] === "softmax" ? "attn.hook_z" : "lightning.hook_o"}`;
      const source = pair.cleanActs.get(name)!.f32;
      const s = pair.firstDifference;
      return this.run(pair, s, new Map([[name, (rows) => {
        for (let t = 0; t < pair.tokens - s; t++) rows.set(source.subarray(((s + t) * nh + h) * d, ((s + t) * nh + h + 1) * d), (t * nh + h) * d);
      }]]));
    }, options.signal);
  }

  /**
   * (layer × expert): at every position, expert e's weighted output in the corrupted run is swapped for its weighted
   * output in the clean run (zero where the router did not choose it), the other experts left as they are.
   */
  async experts(options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const { numLayers, hiddenSize: hs } = this.model.config;
    const layers = Array.from({ length: numLayers }, (_, l) => l);
    // per pair and layer: each expert's clean − corrupted share, [n, hidden]
    const changes = new Map(this.pairs.map((pair) => [pair, layers.map((l) => {
      const clean = expertContributions(this.model.config, l, (name) => pair.cleanActs.get(name)!);
      const corrupt = expertContributions(this.model.config, l, (name) => pair.corruptActs.get(name)!);
      return clean.map((c, e) => Float64Array.from(c, (x, i) => x - corrupt[e][i]));
    })]));
    return this.sweep(this.expertAxes("Activation patching: one expert's weighted output at every position"), (pair, l, e) => {
      const change = changes.get(pair)![l][e];
      const s = pair.firstDifference;
      return this.run(pair, s, new Map([[`blocks.${l}.hook_mlp_out`, (rows) => {
        for (let i = 0; i < (pair.tokens - s) * hs; i++) rows[i] += change[s * hs + i];
      }]]));
    }, options.signal);
  }

  /**
   * (lightning layer × position): the state S of one lightning layer after position p set to the clean run's S
   * after p; the corrupted run continues from there. A pair's last position is left out (nothing reads the state
   * after it).
   */
  async lightningState(options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const types = this.model.config.layerTypes;
    const layers = types.flatMap((t, l) => (t === "lightning" ? [l] : []));
    if (layers.length === 0) throw new InputError("this model has no lightning layers");
    this.cleanPrefix ??= await prefixCaches(this.model, this.pairs.map((p) => p.cleanIds), options.signal);
    const cleanPrefix = new Map(this.pairs.map((pair, i) => [pair, this.cleanPrefix![i]]));
    const positions = Array.from({ length: this.tokens - 1 }, (_, p) => p);
    return this.sweep(this.positionAxes("Activation patching: a lightning layer's state S after one position", layers, positions), (pair, l, p) => {
      if (p >= pair.tokens - 1) return null;
      const state = cleanPrefix.get(pair)![p + 1].lightning[l]!;
      if (state.every((x, i) => x === pair.corruptPrefix[p + 1].lightning[l]![i])) return "unchanged";
      return { ...this.run(pair, p + 1, new Map()), prepare: (cache: ModelCache) => cache.lightning[l]!.set(state) };
    }, options.signal);
  }

  /** The layers whose blocks have hook `blocks.{l}.${hook}`. */
  layersWith(hook: string): number[] {
    const known = new Set(hookNames(this.model.config.layerTypes));
    const layers = this.model.config.layerTypes.flatMap((_, l) => (known.has(`blocks.${l}.${hook}`) ? [l] : []));
    if (layers.length === 0) {
      const suffixes = [...new Set([...known].filter((x) => x.startsWith("blocks.")).map((x) => x.replace(/^blocks\.\d+\./, "")))];
      throw new InputError(`no layer has a hook "blocks.{layer}.${hook}"; hook points: ${suffixes.join(", ")}`);
    }
    return layers;
  }

  layerLabel(l: number): string {
    return `${l} ${this.model.config.layerTypes[l]}`;
  }

  /** The axes of a (layer × position) sweep over `layers` and `positions` (default: up to the longest pair's end). */
  positionAxes(title: string, layers: number[], positions = this.labels.map((_, p) => p)): GridAxes {
    return { ...this.layerAxis(title, layers), columnLabels: positions.map((p) => this.labels[p]), columnName: "position", columns: positions };
  }

  /** The axes of a (layer × head) sweep. */
  headAxes(title: string): GridAxes {
    const nh = this.model.config.numHeads;
    return { ...this.layerAxis(title), columnLabels: Array.from({ length: nh }, (_, h) => `head ${h}`), columnName: "head", columns: Array.from({ length: nh }, (_, h) => h) };
  }

  /** The axes of a (layer × expert) sweep. */
  expertAxes(title: string): GridAxes {
    const ne = this.model.config.numExperts;
    return { ...this.layerAxis(title), columnLabels: Array.from({ length: ne }, (_, e) => `expert ${e}`), columnName: "expert", columns: Array.from({ length: ne }, (_, e) => e) };
  }

  private layerAxis(title: string, layers = this.model.config.layerTypes.map((_, l) => l)) {
    return { title, rowLabels: layers.map((l) => this.layerLabel(l)), rowName: "layer", rows: layers };
  }

  /** A run of a pair's corrupted prompt from its cache after `start` tokens. */
  private run(pair: PatchingPair, start: number, edits: Map<string, (rows: Float32Array, rowWidth: number) => void>): PatchedRun {
    return { pair, start, from: pair.corruptPrefix[start], edits };
  }

  /** Every pair's cells of a sweep: runs them all together, and the pairs' grids as one result. */
  private async sweep(axes: GridAxes, cell: (pair: PatchingPair, row: number, column: number) => Cell, signal?: AbortSignal): Promise<PatchingResult> {
    const planned = this.pairs.map((pair) => axes.rows.flatMap((row) => axes.columns.map((column) => cell(pair, row, column))));
    const runs = planned.flat().filter((c): c is PatchedRun => c !== null && c !== "unchanged");
    const values = await this.execute(runs, signal);
    const valueOf = new Map(runs.map((r, i) => [r, values[i]]));
    return new PatchingResult(axes, this.pairs.map((pair, i) => ({
      clean: pair.clean, corrupted: pair.corrupted,
      values: planned[i].map((c) => (c === null ? null : c === "unchanged" ? pair.corrupted : valueOf.get(c)!)),
    })));
  }

  /** The metric of every run, packed into passes of about ROWS_PER_PASS rows, each run on its own copy of its
   *  cache; one hook per patched hook name. */
  private async execute(runs: PatchedRun[], signal?: AbortSignal): Promise<number[]> {
    const values: number[] = [];
    const vocab = this.model.config.vocabSize;
    for (const batch of passes(runs, (r) => r.pair.tokens - r.start, ROWS_PER_PASS)) {
      const names = [...new Set(batch.flatMap((r) => [...r.edits.keys()]))];
      const edit: HookFn = (value: Tensor, ctx: HookContext) => {
        const data = value.f32;
        const width = data.length / value.shape[0];
        batch.forEach((run, j) => {
          const fn = run.edits.get(ctx.name);
          if (!fn) return;
          const seq = ctx.sequences?.[j] ?? { start: 0, tokens: ctx.tokens };
          fn(data.subarray(seq.start * width, (seq.start + seq.tokens) * width), width);
        });
      };
      const caches = batch.map((r) => {
        const cache = r.from.clone();
        r.prepare?.(cache);
        return cache;
      });
      const ids = batch.map((r) => r.pair.corruptedIds.slice(r.start));
      const { logits } = await this.model.hooks.with(names.length ? [[names, edit]] : [], () =>
        this.model.forwardBatch(ids, { caches, logits: "last", signal }));
      logits.forEach((t, j) => values.push(batch[j].pair.metric(t.f32.subarray(0, vocab))));
    }
    return values;
  }
}

/** Every activation of every sequence and the logits of its last position, packed into passes of ROWS_PER_PASS rows. */
async function recordAll(model: Model, sequences: readonly number[][]): Promise<{ lastLogits: Float32Array[]; activations: ActivationCache[] }> {
  const lastLogits: Float32Array[] = [], activations: ActivationCache[] = [];
  for (const batch of passes(sequences, (s) => s.length, ROWS_PER_PASS)) {
    const result = await model.runWithCacheBatch(batch, (name) => name.startsWith("blocks.") || name === "embed", { logits: "last" });
    lastLogits.push(...result.logits.map((t) => t.f32));
    activations.push(...result.activations);
  }
  return { lastLogits, activations };
}

/** Per sequence, its caches after p tokens, p = 0 .. n-1: all sequences advance one token per batched step. */
async function prefixCaches(model: Model, sequences: readonly number[][], signal?: AbortSignal): Promise<ModelCache[][]> {
  const out = sequences.map(() => [model.newCache()]);
  const longest = Math.max(...sequences.map((s) => s.length));
  for (let p = 0; p < longest - 1; p++) {
    const going = sequences.flatMap((s, i) => (p < s.length - 1 ? [i] : []));
    const caches = going.map((i) => out[i][p].clone());
    await model.stepBatch(going.map((i) => sequences[i][p]), caches, signal);
    going.forEach((i, j) => out[i].push(caches[j]));
  }
  return out;
}
