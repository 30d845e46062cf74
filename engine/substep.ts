import { Tensor } from "./tensor.ts";
import type { Pass } from "./layers.ts";
import { checkReplacement } from "./hooks.ts";
import { DISPLAY, tensorBundle, htmlBundle, escapeHtml, type MimeBundle } from "./display.ts";

/**
 * One paused sub-step of a forward pass: what went in, what came out. Assign `output` to change what flows on.
 * A sub-step is named by the hook point of the value it produces, in order: `embed`; per layer
 * `blocks.{L}.ln1.hook_normalized` → `hook_attn_out` → `hook_resid_mid` → `ln2.hook_normalized` → `hook_mlp_out` →
 * `hook_resid_post`; `ln_final.hook_normalized`; `logits`. Editing `output` equals a hook on that name returning it.
 */
export class SubStep {
  readonly phase: "prefill" | "decode";
  readonly position: number;
  readonly tokens: number;
  readonly inputs: Readonly<Record<string, Tensor>>;
  private value: Tensor;

  constructor(readonly name: string, readonly layer: number | null, pass: Pass, inputs: Record<string, Float32Array>, output: Tensor) {
    this.phase = pass.phase;
    this.position = pass.position;
    this.tokens = pass.tokens;
    const rows = output.shape[0];
    this.inputs = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, new Tensor("F32", [rows, v.length / rows], v)]));
    this.value = output;
  }

  get output(): Tensor {
    return this.value;
  }

  /** Replaces the output (same shape and dtype) for the rest of the pass. */
  set output(replacement: Tensor) {
    checkReplacement(this.value, replacement, this.name);
    this.value = replacement;
  }

  [DISPLAY](): MimeBundle {
    const head = `${this.name} (${this.phase}, positions ${this.position}..${this.position + this.tokens - 1})`;
    const parts = [...Object.entries(this.inputs).map(([k, t]) => [`input ${k}`, t] as const), ["output", this.value] as const]
      .map(([label, t]) => [label, tensorBundle({ shape: t.shape, dtype: t.dtype, values: t.f32 }, label)] as const);
    const html = `<div class="m1-substep"><b>${escapeHtml(head)}</b>${parts.map(([label, b]) => `<div><i>${escapeHtml(label)}</i>${b["text/html"] ?? ""}</div>`).join("")}</div>`;
    const text = [head, ...parts.map(([label, b]) => `  ${label}: ${b["text/plain"].split("\n")[0]}`)].join("\n");
    return htmlBundle(html, text);
  }
}
