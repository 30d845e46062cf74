/**
 * The notebook's entry point: a session that loads checkpoints by name, swaps them while keeping its prompt,
 * hooks and traces, and hands out traces, steppers, generations and weight diffs.
 *
 *   const wb = await Workbench.open();
 *   const m = await wb.load("mini-40k");
 *   const t40 = await m.trace("<s> 1 2 + 3 4 = <think>");
 *   const m80 = await wb.swap("mini-80k");
 *   const t80 = await wb.trace();          // the session's prompt, on the current checkpoint
 *   t40.diff(t80)
 */
import { Model } from "./model.ts";
import { Checkpoint } from "./checkpoint.ts";
import { Registry, type RegistryEntry, type CheckpointSource } from "./registry.ts";
import { Trace } from "./trace.ts";
import type { Stepper } from "./stepper.ts";
import type { Generation, GenerateOptions } from "./generate.ts";
import type { ForwardOptions } from "./model.ts";
import type { HookFilter, HookFn } from "./hooks.ts";
import { RemoteGeneration } from "./remote.ts";
import { diffWeights, type DiffOptions, type WeightDiff } from "./analysis/weights.ts";
import { architectureSummary, type ArchitectureSummary } from "./summary.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "./display.ts";
import { InputError } from "./errors.ts";
import type { ChatMessage } from "./tokenizer.ts";

type Prompt = string | ArrayLike<number>;

/** A checkpoint loaded in a workbench: local weights (everything), or an endpoint (generation only). */
export class LoadedModel {
  private summaryCache: ArchitectureSummary | null = null;

  constructor(readonly entry: RegistryEntry & { source: CheckpointSource }, /** null for an endpoint */ readonly local: Model | null) {}

  get name(): string {
    return this.entry.name;
  }

  /** The engine model (local checkpoints only). */
  get model(): Model {
    if (!this.local) {
      throw new InputError(`"${this.name}" is served by an endpoint (${(this.entry.source as { baseUrl: string }).baseUrl}): only generate() runs there; traces and steppers need local weights`);
    }
    return this.local;
  }

  /** A full forward pass with its activations (all hooks, or those `names` selects). */
  trace(prompt: Prompt, names?: HookFilter): Promise<Trace> {
    return Trace.run(this.model, this.name, prompt, names);
  }

  /** Traces of many prompts from one packed forward pass, in the prompts' order. */
  traceBatch(prompts: readonly Prompt[], names?: HookFilter): Promise<Trace[]> {
    return Trace.runBatch(this.model, this.name, prompts, names);
  }

  /** A forward pass that pauses at every sub-step of every layer. */
  step(prompt: Prompt, options: ForwardOptions = {}): Stepper {
    return this.model.step(prompt, options);
  }

  /** Generation: local (token stream with ids) or on the endpoint (text stream). */
  generate(prompt: Prompt, options: GenerateOptions = {}): Generation | RemoteGeneration {
    if (this.local) return this.local.generate(prompt, options);
    if (typeof prompt !== "string") throw new InputError(`"${this.name}" is served by an endpoint: give the prompt as text`);
    return this.remote(prompt, options);
  }

  /** Chat on the endpoint (messages in M1's format), or locally through the checkpoint's chat template. */
  chat(messages: ChatMessage[], options: GenerateOptions = {}): Generation | RemoteGeneration {
    if (!this.local) return this.remote(messages, options);
    const tok = this.local.tokenizer;
    if (!tok) throw new InputError(`"${this.name}" has no tokenizer, so no chat template`);
    return this.local.generate(tok.renderChat(messages, { addGenerationPrompt: true }), options);
  }

  /** A generation on the endpoint; greedy is asked for as temperature 0, as OpenAI-compatible servers take it. */
  private remote(prompt: string | ChatMessage[], options: GenerateOptions): RemoteGeneration {
    const endpoint = this.entry.source as Extract<CheckpointSource, { kind: "endpoint" }>;
    return new RemoteGeneration(endpoint, prompt, { ...options, temperature: options.greedy ? 0 : options.temperature });
  }

  /** Architecture, parameters, bytes per layer (local checkpoints). */
  summary(): ArchitectureSummary {
    this.summaryCache ??= architectureSummary(this.model.checkpoint.dir);
    return this.summaryCache;
  }

  [DISPLAY](): MimeBundle {
    if (!this.local) {
      const src = this.entry.source as { baseUrl: string; model: string };
      return htmlBundle(`<b>${escapeHtml(this.name)}</b> — endpoint ${escapeHtml(src.baseUrl)} (model ${escapeHtml(src.model)})<p>${escapeHtml(this.entry.description)}</p>`,
        `${this.name}: endpoint ${src.baseUrl} (model ${src.model})\n${this.entry.description}`);
    }
    return modelCard(this.name, this.entry.description, this.summary());
  }
}

const fmt = (x: number) => x.toLocaleString("en-US");
const bytes = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

/** The architecture card: what the checkpoint is, its layer pattern, sizes and memory. */
function modelCard(name: string, description: string, s: ArchitectureSummary): MimeBundle {
  const a = s.architecture;
  const pattern = Array.from({ length: a.layers }, (_, l) => {
    const softmax = a.softmaxLayers.includes(l);
    return `<span title="layer ${l}: ${softmax ? "softmax" : "lightning"} attention + MoE" style="display:inline-block;width:14px;height:22px;margin:1px;` +
      `background:${softmax ? "#d62728" : "#1f77b4"};color:white;font-size:9px;text-align:center">${softmax ? "S" : "L"}</span>`;
  }).join("");
  const rows: [string, string][] = [
    ["layers", `${a.layers}: ${a.lightningLayers} lightning + ${a.softmaxLayers.length} softmax (softmax at ${a.softmaxLayers.join(", ")})`],
    ["width", `hidden ${a.hiddenSize}; ${a.heads} heads × ${a.headDim}; ${a.kvHeads} KV heads; RoPE on ${a.rotaryDim} dims (θ ${a.ropeTheta})`],
    ["MoE", `${a.experts} experts, top-${a.topK}, intermediate ${a.intermediateSize}`],
    ["parameters", `${fmt(s.parameters.total)} (${fmt(s.parameters.activePerToken)} active per token, excl. embedding and LM head)`],
    ["weights", `${bytes(s.bytes.total)} (${s.bytes.dtypeSource === "checkpoint" ? "dtypes from the checkpoint" : s.bytes.assumption})`],
    ["decoding memory", `lightning state ${bytes(s.cache.lightningStateBytesF32)} per sequence (constant) + KV cache ${bytes(s.cache.kvBytesPerTokenF32)} per token (f32)`],
    ["vocabulary", `${fmt(a.vocabSize)}${a.tiedEmbeddings ? " (tied embeddings)" : ""}`],
  ];
  const html = `<div class="m1-card"><h3 style="margin:0">${escapeHtml(name)}</h3><p>${escapeHtml(description)}</p><div>${pattern}</div>` +
    `<table>${rows.map(([k, v]) => `<tr><th style="text-align:left">${k}</th><td style="text-align:left">${escapeHtml(v)}</td></tr>`).join("")}</table></div>`;
  const text = [`${name}`, description, ...rows.map(([k, v]) => `  ${k.padEnd(16)}${v}`)].join("\n");
  return htmlBundle(html, text);
}

export class Workbench {
  private current: LoadedModel | null = null;
  private readonly sessionHooks: [HookFilter, HookFn][] = [];
  /** Every trace taken through the session, kept across swaps. */
  readonly traces: Trace[] = [];
  /** The session's prompt: the last one traced or stepped. */
  prompt: Prompt | null = null;

  private constructor(readonly registry: Registry) {}

  static async open(options: { registry?: Registry } = {}): Promise<Workbench> {
    return new Workbench(options.registry ?? Registry.default());
  }

  /** The checkpoint the session is on. */
  get model(): LoadedModel {
    if (!this.current) throw new InputError("no checkpoint loaded yet: call workbench.load(name)");
    return this.current;
  }

  /** Adds a checkpoint by name: a local directory (streamed under a memory budget) or an OpenAI-compatible endpoint. */
  register(name: string, spec: { path: string; residentBudgetBytes?: number } | { endpoint: string; model: string; apiKey?: string }, description = ""): void {
    const source: CheckpointSource = "path" in spec
      ? { kind: "local", path: spec.path, residentBudgetBytes: spec.residentBudgetBytes }
      : { kind: "endpoint", baseUrl: spec.endpoint, model: spec.model, apiKey: spec.apiKey };
    this.registry.add({ name, description: description || ("path" in spec ? `checkpoint directory ${spec.path}` : `endpoint ${spec.endpoint}`), embedded: false, source });
  }

  /** Loads a checkpoint (registry name or directory) and makes it the session's current one. */
  async load(nameOrPath: string, options: { residentBudgetBytes?: number } = {}): Promise<LoadedModel> {
    const entry = this.registry.resolve(nameOrPath);
    const src = entry.source;
    const local = src.kind === "local"
      ? await Model.load(src.path, { residentBudgetBytes: options.residentBudgetBytes ?? src.residentBudgetBytes })
      : null;
    if (local) for (const [filter, fn] of this.sessionHooks) local.hooks.add(filter, fn);
    this.current = new LoadedModel(entry, local);
    return this.current;
  }

  /** Switches the session to another checkpoint; prompt, session hooks and traces stay. */
  async swap(nameOrPath: string): Promise<LoadedModel> {
    const previous = this.current;
    const next = await this.load(nameOrPath);
    if (previous?.local) {
      for (const [filter, fn] of this.sessionHooks) previous.local.hooks.removeFn(filter, fn);
      previous.local.checkpoint.evict();
    }
    return next;
  }

  /** A hook that stays with the session: on the current checkpoint and every one loaded or swapped in later. */
  addHook(filter: HookFilter, fn: HookFn): () => void {
    this.sessionHooks.push([filter, fn]);
    this.current?.local?.hooks.add(filter, fn);
    return () => {
      const i = this.sessionHooks.findIndex(([f, g]) => f === filter && g === fn);
      if (i >= 0) this.sessionHooks.splice(i, 1);
      this.current?.local?.hooks.removeFn(filter, fn);
    };
  }

  /** Traces the prompt (default: the session's prompt) on the current checkpoint and keeps the trace. */
  async trace(prompt: Prompt | null = this.prompt, names?: HookFilter): Promise<Trace> {
    if (prompt === null) throw new InputError("no prompt yet: give one (it becomes the session's prompt)");
    this.prompt = prompt;
    const t = await this.model.trace(prompt, names);
    this.traces.push(t);
    return t;
  }

  /** Steps through the prompt (default: the session's prompt) on the current checkpoint. */
  step(prompt: Prompt | null = this.prompt, options: ForwardOptions = {}): Stepper {
    if (prompt === null) throw new InputError("no prompt yet: give one (it becomes the session's prompt)");
    this.prompt = prompt;
    return this.model.step(prompt, options);
  }

  /** Tensor-by-tensor weight difference of two checkpoints, streamed (bounded memory at any size). */
  async diffWeights(a: string, b: string, options: DiffOptions = {}): Promise<WeightDiff> {
    const open = (name: string) => {
      const src = this.registry.resolve(name).source;
      if (src.kind !== "local") throw new InputError(`"${name}" is an endpoint: a weight diff needs local weights`);
      return Checkpoint.open(src.path, { residentBudgetBytes: 0 });
    };
    const ca = open(a);
    const cb = open(b);
    try {
      return await diffWeights(ca, cb, options);
    } finally {
      ca.close();
      cb.close();
    }
  }

  [DISPLAY](): MimeBundle {
    const rows = this.registry.list().map((e) => [e.name, e.source ? (e.source.kind === "local" ? e.source.path : e.source.baseUrl) : `not available: ${e.setup}`, e.description] as const);
    const head = `Workbench — current: ${this.current?.name ?? "none"}; ${this.traces.length} trace(s); prompt: ${this.prompt === null ? "none" : JSON.stringify(typeof this.prompt === "string" ? this.prompt : Array.from(this.prompt))}`;
    const html = `<div class="m1-workbench"><b>${escapeHtml(head)}</b><table><tr><th>checkpoint</th><th>where</th><th>what</th></tr>` +
      rows.map((r) => `<tr>${r.map((c) => `<td style="text-align:left">${escapeHtml(c)}</td>`).join("")}</tr>`).join("") + `</table></div>`;
    return htmlBundle(html, [head, ...rows.map((r) => `  ${r[0]}: ${r[1]}`)].join("\n"));
  }
}
