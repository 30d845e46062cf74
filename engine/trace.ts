/**
 * A traced forward pass: the prompt, its logits and every activation by hook name, with views that explain
 * each part of the architecture (softmax attention patterns, lightning decay/state/effective weights, MoE
 * routing, logit lens) and a layer-by-layer comparison with another trace.
 */
import * as native from "../native/index.ts";
import type { Model } from "./model.ts";
import { Tensor } from "./tensor.ts";
import type { ActivationCache, HookFilter } from "./hooks.ts";
import { InputError } from "./errors.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "./display.ts";
import { tokenLabels, tokenText } from "./analysis/tokens.ts";
import { softmax } from "./softmax.ts";
import { AttentionPattern } from "./analysis/attention.ts";
import { LightningLayer } from "./analysis/lightning.ts";
import { Routing } from "./analysis/routing.ts";
import { LogitLens } from "./analysis/lens.ts";
import { TraceDiff, relativeDifference, routingAgreement, logitsDivergence } from "./analysis/diff.ts";

export class Trace {
  readonly labels: string[];

  constructor(
    readonly model: Model,
    /** the checkpoint's name in the workbench (or its directory) */
    readonly name: string,
    readonly ids: number[],
    /** [n, vocab] */
    readonly logits: Tensor,
    readonly activations: ActivationCache,
  ) {
    this.labels = tokenLabels(model, ids);
  }

  /** Runs a full forward pass from an empty cache, recording the activations `names` selects (default: all). */
  static async run(model: Model, name: string, prompt: ArrayLike<number> | string, names: HookFilter = () => true): Promise<Trace> {
    const ids = Array.from(model.promptIds(prompt));
    const { logits, activations } = await model.runWithCache(ids, names);
    return new Trace(model, name, ids, logits, activations);
  }

  get tokens(): number {
    return this.ids.length;
  }

  /** The recorded activation of a hook name. */
  get(name: string): Tensor {
    return this.activations.get(name);
  }

  private layerOfType(layer: number, type: "lightning" | "softmax"): void {
    const types = this.model.config.layerTypes;
    if (!(Number.isInteger(layer) && layer >= 0 && layer < types.length)) throw new InputError(`layer ${layer} is outside [0, ${types.length})`);
    if (types[layer] !== type) {
      const ofType = types.flatMap((t, l) => (t === type ? [l] : []));
      throw new InputError(`layer ${layer} is a ${types[layer]} layer; ${type} layers are ${ofType.join(", ")}`);
    }
  }

  /** Attention patterns per head of a softmax layer. */
  attention(layer: number): AttentionPattern {
    this.layerOfType(layer, "softmax");
    return new AttentionPattern(layer, this.get(`blocks.${layer}.attn.hook_pattern`), this.labels);
  }

  /** Decay, state norms and effective token-to-token weights of a lightning layer. */
  lightning(layer: number): LightningLayer {
    this.layerOfType(layer, "lightning");
    const h = (s: string) => this.get(`blocks.${layer}.lightning.hook_${s}`);
    return new LightningLayer(layer, this.model.config, { q: h("q"), k: h("k"), v: h("v"), o: h("o") }, this.labels);
  }

  /** Experts chosen per token, their weights, expert load and router entropy. */
  routing(layer: number): Routing {
    const h = (s: string) => this.get(`blocks.${layer}.moe.hook_${s}`);
    return new Routing(layer, h("router_logits"), h("topk_idx"), h("topk_weights"), this.labels);
  }

  /** Each layer's residual stream read through the final norm and the LM head. */
  logitLens(): LogitLens {
    const { hiddenSize: hs, vocabSize: vocab, rmsNormEps, numLayers } = this.model.config;
    const n = this.tokens;
    const norm = this.model.vector("model.norm.weight", hs);
    const head = this.model.weight("lm_head.weight", [vocab, hs]);
    const perLayer = Array.from({ length: numLayers }, (_, l) => {
      const x = this.get(`blocks.${l}.hook_resid_post`).f32;
      return native.matmul(native.rmsnorm(x, n, hs, norm, rmsNormEps), n, head);
    });
    return LogitLens.compute(perLayer, n, vocab, this.logits.f32, this.labels, (id) => tokenText(this.model, id));
  }

  /** Where this trace and another of the same prompt diverge: residual, attention and MoE outputs, routing, logits. */
  diff(other: Trace): TraceDiff {
    if (other.ids.join() !== this.ids.join()) throw new InputError("traces to compare must be of the same prompt (token ids differ)");
    const cfg = this.model.config;
    if (other.model.config.layerTypes.join() !== cfg.layerTypes.join()) throw new InputError("traces to compare must come from models with the same layer pattern");
    const layers = cfg.layerTypes.map((type, l) => {
      const rel = (s: string) => relativeDifference(this.get(`blocks.${l}.${s}`).f32, other.get(`blocks.${l}.${s}`).f32);
      return {
        layer: l,
        type,
        residual: rel("hook_resid_post"),
        attention: rel("hook_attn_out"),
        moe: rel("hook_mlp_out"),
        routingAgreement: routingAgreement(this.get(`blocks.${l}.moe.hook_topk_idx`).i32, other.get(`blocks.${l}.moe.hook_topk_idx`).i32, cfg.topK),
      };
    });
    return new TraceDiff([this.name, other.name], layers, logitsDivergence(this.logits.f32, other.logits.f32, cfg.vocabSize));
  }

  /** The most likely next tokens after the prompt. */
  topNext(k = 5): { id: number; text: string; prob: number }[] {
    const vocab = this.model.config.vocabSize;
    const probs = softmax((this.logits.f32).subarray((this.tokens - 1) * vocab));
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]).slice(0, k);
    return order.map((id) => ({ id, text: tokenText(this.model, id), prob: probs[id] }));
  }

  [DISPLAY](): MimeBundle {
    const next = this.topNext();
    const recorded = this.activations.names().length;
    const text = `Trace of ${this.name}: ${this.tokens} tokens, ${recorded} activations recorded\n` +
      `prompt: ${this.labels.join(" ")}\nnext: ${next.map((t) => `${JSON.stringify(t.text)} ${(100 * t.prob).toFixed(1)}%`).join(", ")}`;
    const html = `<div class="m1-trace"><b>Trace of ${escapeHtml(this.name)}</b> — ${this.tokens} tokens, ${recorded} activations recorded` +
      `<p><code>${this.labels.map(escapeHtml).join(" ")}</code></p><table><tr><th>next token</th><th>p</th></tr>` +
      next.map((t) => `<tr><td><code>${escapeHtml(JSON.stringify(t.text))}</code></td><td>${(100 * t.prob).toFixed(1)}%</td></tr>`).join("") +
      `</table><p><small>views: .attention(${this.model.config.layerTypes.flatMap((t, l) => (t === "softmax" ? [l] : [])).join("|")}), .lightning(layer), .routing(layer), .logitLens(), .diff(otherTrace)</small></p></div>`;
    return htmlBundle(html, text);
  }
}
