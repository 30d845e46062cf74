import { Tensor } from "./tensor.ts";
import type { Pass } from "./layers.ts";
import { checkReplacement } from "./hooks.ts";
import { DISPLAY, tensorBundle, htmlBundle, escapeHtml, type MimeBundle } from "./display.ts";

/** The sub-steps of a forward pass, in order: per layer ln1 → attention → attn_residual → ln2 → moe → mlp_residual. */
export type Stage = "embed" | "ln1" | "attention" | "attn_residual" | "ln2" | "moe" | "mlp_residual" | "ln_final" | "lm_head";

/** One paused sub-step of a forward pass: what went in, what came out. Assign `output` to change what flows on. */
export class SubStep {
  readonly phase: "prefill" | "decode";
  readonly position: number;
  readonly tokens: number;
  readonly inputs: Readonly<Record<string, Tensor>>;
  private value: Tensor;

  constructor(readonly stage: Stage, readonly layer: number | null, pass: Pass, inputs: Record<string, Float32Array>, output: Tensor) {
    this.phase = pass.phase;
    this.position = pass.position;
    this.tokens = pass.tokens;
    const rows = output.shape[0];
    this.inputs = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, new Tensor("F32", [rows, v.length / rows], v)]));
    this.value = output;
  }

  /** "blocks.3.attention", "embed", ... */
  get name(): string {
    return this.layer === null ? this.stage : `blocks.${this.layer}.${this.stage}`;
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
      .map(([label, t]) => [label, tensorBundle({ shape: t.shape, dtype: t.dtype, values: t.data as Float32Array }, label)] as const);
    const html = `<div class="m1-substep"><b>${escapeHtml(head)}</b>${parts.map(([label, b]) => `<div><i>${escapeHtml(label)}</i>${b["text/html"] ?? ""}</div>`).join("")}</div>`;
    const text = [head, ...parts.map(([label, b]) => `  ${label}: ${b["text/plain"].split("\n")[0]}`)].join("\n");
    return htmlBundle(html, text);
  }
}
