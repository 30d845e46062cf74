/**
 * Activation patching between a clean and a corrupted prompt of the same length: run the corrupted prompt, copy
 * one piece of the clean run's activations into it, and measure how far a metric of the last position's logits
 * moves back towards the clean value. Sweeps cover (layer × position) of any hook point, (layer × head) of the
 * softmax and lightning heads, (layer × expert) of the MoE, and the lightning state S after a position.
 *
 * A patch at position p leaves positions before p as they were, so every patched run starts from the corrupted
 * run's cache after p tokens and runs only the rest; the runs of a sweep are packed into a few batched passes.
 */
import type { Model } from "../model.ts";
import type { ModelCache } from "../cache.ts";
import { hookNames, type HookContext, type HookFn } from "../hooks.ts";
import { Tensor } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { tokenLabels } from "../analysis/tokens.ts";
import { PatchingResult } from "./result.ts";
import { expertContributions } from "./experts.ts";
import type { Metric } from "./metric.ts";

/** One patched run: where it starts, its cache at that point, and the edits its hooks make to its own rows. */
interface PatchedRun {
  readonly start: number;
  readonly cache: ModelCache;
  /** hook name → edit of this run's rows of that hook's value (row 0 = position `start`) */
  readonly edits: ReadonlyMap<string, (rows: Float32Array, rowWidth: number) => void>;
}

/** Rows of one batched pass of patched runs (enough to keep each pass's intermediates in cache). */
const ROWS_PER_PASS = 2048;

export class ActivationPatching {
  readonly tokens: number;
  readonly labels: string[];
  /** the metric on the clean and on the corrupted run */
  readonly clean: number;
  readonly corrupted: number;
  /** first position where the prompts differ: patches of whole hooks start there (before it the runs are equal) */
  readonly firstDifference: number;

  private constructor(
    readonly model: Model,
    readonly cleanIds: number[],
    readonly corruptedIds: number[],
    readonly metric: Metric,
    /** every activation of the clean and of the corrupted run, by hook name */
    readonly cleanActs: ReadonlyMap<string, Tensor>,
    readonly corruptActs: ReadonlyMap<string, Tensor>,
    /** caches after p tokens of each prompt, p = 0 .. n-1 */
    private readonly cleanPrefix: ModelCache[],
    private readonly corruptPrefix: ModelCache[],
    clean: number,
    corrupted: number,
  ) {
    this.tokens = cleanIds.length;
    this.labels = tokenLabels(model, corruptedIds);
    this.clean = clean;
    this.corrupted = corrupted;
    const diff = cleanIds.findIndex((id, i) => id !== corruptedIds[i]);
    this.firstDifference = diff < 0 ? this.tokens : diff;
  }

  /** Runs both prompts once (every activation recorded) and keeps their caches after every prefix. */
  static async prepare(model: Model, clean: ArrayLike<number> | string, corrupted: ArrayLike<number> | string, metric: Metric): Promise<ActivationPatching> {
    const cleanIds = Array.from(model.promptIds(clean));
    const corruptedIds = Array.from(model.promptIds(corrupted));
    if (cleanIds.length !== corruptedIds.length) {
      throw new InputError(`activation patching needs prompts of the same length: the clean prompt has ${cleanIds.length} tokens, the corrupted one ${corruptedIds.length}`);
    }
    if (cleanIds.length < 1) throw new InputError("activation patching: the prompts are empty");
    if (cleanIds.every((id, i) => id === corruptedIds[i])) throw new InputError("activation patching: the clean and the corrupted prompt are the same tokens");
    const { logits, activations } = await model.runWithCacheBatch([cleanIds, corruptedIds], (name) => name.startsWith("blocks.") || name === "embed");
    const acts = activations.map((a) => new Map(a.names().map((name) => [name, a.get(name)])));
    const vocab = model.config.vocabSize;
    const n = cleanIds.length;
    const lastRow = (t: Tensor) => t.f32.slice((n - 1) * vocab, n * vocab);
    const prefixes = async (ids: number[]) => {
      const caches = [model.newCache()];
      for (let p = 0; p < n - 1; p++) caches.push((await model.forward([ids[p]], { cache: caches[p].clone(), logits: "none" })).cache);
      return caches;
    };
    const [cleanPrefix, corruptPrefix] = [await prefixes(cleanIds), await prefixes(corruptedIds)];
    const [cleanValue, corruptValue] = [metric(lastRow(logits[0])), metric(lastRow(logits[1]))];
    for (const [what, v] of [["clean", cleanValue], ["corrupted", corruptValue]] as const) {
      if (!Number.isFinite(v)) throw new InputError(`the metric of the ${what} run is ${v}: it must return a finite number`);
    }
    if (cleanValue === corruptValue) throw new InputError(`the metric is ${cleanValue} on both runs: there is nothing for a patch to restore`);
    return new ActivationPatching(model, cleanIds, corruptedIds, metric, acts[0], acts[1], cleanPrefix, corruptPrefix, cleanValue, corruptValue);
  }

  /**
   * (layer × position) of a hook point inside the blocks, e.g. "hook_resid_pre", "hook_attn_out",
   * "attn.hook_z", "lightning.hook_o", "moe.hook_router_logits": one patched run per layer that has it and position.
   */
  async positions(hook: string, options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const layers = this.layersWith(hook);
    const n = this.tokens;
    const runs: PatchedRun[] = [];
    for (const l of layers) {
      const name = `blocks.${l}.${hook}`;
      const clean = this.cleanActs.get(name)!;
      if (clean.shape[0] !== n) throw new InputError(`"${name}" has ${clean.shape[0]} rows, not one per token: it cannot be patched by position`);
      const width = clean.numel / n;
      const source = clean.toFloat32();
      for (let p = 0; p < n; p++) {
        runs.push(this.run(p, new Map([[name, (rows) => rows.set(source.subarray(p * width, (p + 1) * width))]])));
      }
    }
    const values = await this.execute(runs, options.signal);
    return new PatchingResult({
      title: `Activation patching: blocks.{layer}.${hook}, one position at a time`,
      rowLabels: layers.map((l) => this.layerLabel(l)), rowName: "layer", rows: layers,
      columnLabels: this.labels, columnName: "position", columns: this.labels.map((_, p) => p),
      values, clean: this.clean, corrupted: this.corrupted,
    });
  }

  /**
   * (layer × head): each head's output at every position copied from the clean run — the softmax layers' z
   * (before o_proj) and the lightning layers' o (before the norm, which then mixes heads as usual).
   */
  async heads(options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const { numHeads: nh, headDim: d, layerTypes } = this.model.config;
    const runs: PatchedRun[] = [];
    const s = this.firstDifference;
    for (let l = 0; l < layerTypes.length; l++) {
      const name = `blocks.${l}.${layerTypes[l] === "softmax" ? "attn.hook_z" : "lightning.hook_o"}`;
      const source = this.cleanActs.get(name)!.f32;
      for (let h = 0; h < nh; h++) {
        runs.push(this.run(s, new Map([[name, (rows) => {
          for (let t = 0; t < this.tokens - s; t++) rows.set(source.subarray(((s + t) * nh + h) * d, ((s + t) * nh + h + 1) * d), (t * nh + h) * d);
        }]])));
      }
    }
    const values = await this.execute(runs, options.signal);
    return new PatchingResult({
      title: "Activation patching: each head's output at every position (softmax z, lightning o)",
      rowLabels: layerTypes.map((_, l) => this.layerLabel(l)), rowName: "layer", rows: layerTypes.map((_, l) => l),
      columnLabels: Array.from({ length: nh }, (_, h) => `head ${h}`), columnName: "head", columns: Array.from({ length: nh }, (_, h) => h),
      values, clean: this.clean, corrupted: this.corrupted,
    });
  }

  /**
   * (layer × expert): at every position, expert e's weighted output in the corrupted run is swapped for its weighted
   * output in the clean run (zero where the router did not choose it), the other experts left as they are.
   */
  async experts(options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const { numExperts: ne, numLayers, hiddenSize: hs } = this.model.config;
    const runs: PatchedRun[] = [];
    const s = this.firstDifference;
    for (let l = 0; l < numLayers; l++) {
      const clean = expertContributions(this.model.config, l, (name) => this.cleanActs.get(name)!);
      const corrupt = expertContributions(this.model.config, l, (name) => this.corruptActs.get(name)!);
      for (let e = 0; e < ne; e++) {
        runs.push(this.run(s, new Map([[`blocks.${l}.hook_mlp_out`, (rows) => {
          for (let i = 0; i < (this.tokens - s) * hs; i++) rows[i] += clean[e][s * hs + i] - corrupt[e][s * hs + i];
        }]])));
      }
    }
    const values = await this.execute(runs, options.signal);
    return new PatchingResult({
      title: "Activation patching: one expert's weighted output at every position",
      rowLabels: Array.from({ length: numLayers }, (_, l) => this.layerLabel(l)), rowName: "layer", rows: Array.from({ length: numLayers }, (_, l) => l),
      columnLabels: Array.from({ length: ne }, (_, e) => `expert ${e}`), columnName: "expert", columns: Array.from({ length: ne }, (_, e) => e),
      values, clean: this.clean, corrupted: this.corrupted,
    });
  }

  /**
   * (lightning layer × position): the state S of one lightning layer after position p set to the clean run's S
   * after p; the corrupted run continues from there. Position n-1 is left out (nothing reads the state after it).
   */
  async lightningState(options: { signal?: AbortSignal } = {}): Promise<PatchingResult> {
    const types = this.model.config.layerTypes;
    const layers = types.flatMap((t, l) => (t === "lightning" ? [l] : []));
    if (layers.length === 0) throw new InputError("this model has no lightning layers");
    const positions = Array.from({ length: this.tokens - 1 }, (_, p) => p);
    const runs: PatchedRun[] = [];
    for (const l of layers) {
      for (const p of positions) {
        const run = this.run(p + 1, new Map());
        run.cache.lightning[l]!.set(this.cleanPrefix[p + 1].lightning[l]!);
        runs.push(run);
      }
    }
    const values = await this.execute(runs, options.signal);
    return new PatchingResult({
      title: "Activation patching: a lightning layer's state S after one position",
      rowLabels: layers.map((l) => this.layerLabel(l)), rowName: "layer", rows: layers,
      columnLabels: positions.map((p) => this.labels[p]), columnName: "position", columns: positions,
      values, clean: this.clean, corrupted: this.corrupted,
    });
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

  /** A run from the corrupted prompt's cache after `start` tokens (a copy: runs never share state). */
  private run(start: number, edits: Map<string, (rows: Float32Array, rowWidth: number) => void>): PatchedRun {
    return { start, cache: this.corruptPrefix[start].clone(), edits };
  }

  /** The metric of every run, packed into passes of about ROWS_PER_PASS rows; one hook per patched hook name. */
  private async execute(runs: PatchedRun[], signal?: AbortSignal): Promise<number[]> {
    const values: number[] = [];
    const vocab = this.model.config.vocabSize;
    for (let i = 0; i < runs.length;) {
      const batch: PatchedRun[] = [];
      let rows = 0;
      while (i < runs.length && (batch.length === 0 || rows + this.tokens - runs[i].start <= ROWS_PER_PASS)) {
        rows += this.tokens - runs[i].start;
        batch.push(runs[i++]);
      }
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
      const ids = batch.map((r) => this.corruptedIds.slice(r.start));
      const { logits } = await this.model.hooks.with(names.length ? [[names, edit]] : [], () =>
        this.model.forwardBatch(ids, { caches: batch.map((r) => r.cache), logits: "last", signal }));
      for (const t of logits) values.push(this.metric(t.f32.subarray(0, vocab)));
    }
    return values;
  }
}
