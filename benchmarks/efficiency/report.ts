// The paper's efficiency claim, recomputed from the three published configs: the M1 / DeepSeek-R1 FLOPs ratios
// at 64K and 100K generated tokens, the Figure 1 (right) curve beside the figure's readings, and the decoding
// memory (KV cache vs lightning state) at 64K and 1M tokens. Every counting assumption is listed in the output.
import type { Table } from "apache-arrow";
import { DISPLAY, arrowTableBundle, escapeHtml, plotlyBundle, type MimeBundle, type PlotlyFigure } from "../../engine/display.ts";
import { columnsTable, tableRows } from "../arrow.ts";
import { figure1Data, citation } from "../paper/data.ts";
import { figure1Architectures, M1_CONFIG, PEER_CONFIGS } from "./architectures.ts";
import { CostModel } from "./cost-model.ts";

export const COUNTING_ASSUMPTIONS = [
  "FLOPs = 2 per multiply-add of a matrix product; norms, activations, softmax exponentials, RoPE, router top-k and the embedding lookup are not counted",
  "batch 1, cached decoding: the token at position t attends to t positions (itself included); no padding, no speculative decoding",
  "generating G tokens after a prompt of P tokens costs Σ_{t=P+1}^{P+G} F(t); the prompt's prefill is not counted; our curve uses P = 0 (the paper states no prompt length)",
  "the ratio 'per token' compares F(t) of the single token at position t = G; the ratio 'cumulative' compares the whole generation of G tokens (the quantity of Figure 1's y-axis)",
  "memory: K/V caches in bf16 (2 bytes per value), batch 1",
];

export interface ClaimCheck {
  text: string;
  generatedTokens: number;
  bound: "below" | "about";
  paperValue: number;
  cumulativeRatio: number;
  perTokenRatio: number;
  /** the claim holds for the cumulative (Figure 1) quantity */
  holdsCumulative: boolean;
  holdsPerToken: boolean;
}

/** "about" means within this absolute distance of the paper's ratio. */
export const ABOUT_TOLERANCE = 0.05;

export interface EfficiencyOptions { m1Config?: string; peerConfigs?: string; promptTokens?: number }

export class EfficiencyReport {
  readonly models: CostModel[];
  readonly promptTokens: number;

  constructor(options: EfficiencyOptions = {}) {
    this.models = figure1Architectures(options.m1Config ?? M1_CONFIG, options.peerConfigs ?? PEER_CONFIGS).map((a) => new CostModel(a));
    this.promptTokens = options.promptTokens ?? 0;
  }

  model(name: string): CostModel {
    const m = this.models.find((x) => x.name === name);
    if (!m) throw new Error(`no cost model "${name}" (have ${this.models.map((x) => x.name).join(", ")})`);
    return m;
  }

  get assumptions(): string[] {
    return [...COUNTING_ASSUMPTIONS, ...this.models.flatMap((m) => m.arch.assumptions)];
  }

  /** The paper's two statements about M1 vs DeepSeek-R1, checked under both ratios. */
  claims(): ClaimCheck[] {
    const m1 = this.model("MiniMax-M1");
    const r1 = this.model("DeepSeek-R1");
    return figure1Data().claims.map((c) => {
      const G = c.generated_tokens;
      const cumulativeRatio = m1.generationFlops(G, this.promptTokens) / r1.generationFlops(G, this.promptTokens);
      const perTokenRatio = m1.tokenFlops(this.promptTokens + G) / r1.tokenFlops(this.promptTokens + G);
      const holds = (r: number) => (c.bound === "below" ? r < c.value : Math.abs(r - c.value) <= ABOUT_TOLERANCE);
      return { text: c.text, generatedTokens: G, bound: c.bound, paperValue: c.value, cumulativeRatio, perTokenRatio, holdsCumulative: holds(cumulativeRatio), holdsPerToken: holds(perTokenRatio) };
    });
  }

  /** Figure 1 (right): FLOPs to generate G tokens, G = 0…maxTokens, one column per model. */
  curve(maxTokens = 131072, step = 4096): Table {
    const G = Array.from({ length: Math.floor(maxTokens / step) + 1 }, (_, i) => i * step);
    return columnsTable({ generated_tokens: G, ...Object.fromEntries(this.models.map((m) => [m.name, G.map((g) => m.generationFlops(g, this.promptTokens))])) });
  }

  /** The figure's visual readings beside our values at the same generation lengths. */
  readings(): Table {
    const rows = figure1Data().readings.flatMap((r) =>
      this.models.map((m) => {
        const reading = r[m.name] ?? null;
        const ours = m.generationFlops(r.generated_tokens, this.promptTokens);
        return { generated_tokens: r.generated_tokens, model: m.name, figure_reading: reading, ours, ours_over_reading: reading === null ? null : ours / reading };
      }),
    );
    return columnsTable({
      generated_tokens: rows.map((r) => r.generated_tokens),
      model: rows.map((r) => r.model),
      figure_reading: rows.map((r) => r.figure_reading),
      ours: rows.map((r) => r.ours),
      ours_over_reading: rows.map((r) => r.ours_over_reading),
    });
  }

  /** Decoding memory per sequence: growing cache vs constant state, at the given context lengths. */
  memory(contexts = [65536, 1_000_000]): Table {
    const rows = contexts.flatMap((t) => this.models.map((m) => ({ t, name: m.name, ...m.memory(t) })));
    return columnsTable({
      context_tokens: rows.map((r) => r.t),
      model: rows.map((r) => r.name),
      cache_bytes: rows.map((r) => r.cacheBytes),
      state_bytes: rows.map((r) => r.stateBytes),
      total_bytes: rows.map((r) => r.total),
    });
  }

  /** Figure 1 (right) recomputed: cumulative FLOPs per model, with the figure's readings as markers. */
  figure(maxTokens = 131072): PlotlyFigure {
    const curve = tableRows(this.curve(maxTokens));
    const readings = figure1Data().readings;
    const data = this.models.flatMap((m, i) => [
      { type: "scatter", mode: "lines", name: `${m.name} (from its config)`, legendgroup: m.name, line: { color: COLORS[i] }, x: curve.map((r) => r.generated_tokens), y: curve.map((r) => r[m.name]) },
      {
        type: "scatter", mode: "markers", name: `${m.name} (paper's figure, read)`, legendgroup: m.name, marker: { color: COLORS[i], symbol: "circle-open", size: 10 },
        x: readings.filter((r) => r[m.name] != null).map((r) => r.generated_tokens), y: readings.filter((r) => r[m.name] != null).map((r) => r[m.name]),
      },
    ]);
    return {
      data,
      layout: { title: { text: "Inference FLOPs vs generation length (MiniMax-M1 paper, Figure 1 right)" }, xaxis: { title: { text: "generated tokens" } }, yaxis: { title: { text: "FLOPs" } } },
    };
  }

  [DISPLAY](): MimeBundle {
    const plot = plotlyBundle(this.figure());
    const claims = this.claims()
      .map((c) => `<li>${escapeHtml(c.text)}: cumulative ${c.cumulativeRatio.toFixed(3)} (${mark(c.holdsCumulative)}), per token ${c.perTokenRatio.toFixed(3)} (${mark(c.holdsPerToken)})</li>`)
      .join("");
    const html =
      `<h4>MiniMax-M1 / DeepSeek-R1 FLOPs</h4><ul>${claims}</ul>${plot["text/html"]}` +
      `<h4>Decoding memory per sequence</h4>${arrowTableBundle(this.memory())["text/html"]}` +
      `<h4>Counting assumptions</h4><ul>${this.assumptions.map((a) => `<li>${escapeHtml(a)}</li>`).join("")}</ul>`;
    return { ...plot, "text/html": html, "text/plain": this.text() };
  }

  /** The whole report as text: formulas, claims, readings, memory, assumptions. */
  text(): string {
    const out: string[] = ["Inference cost per generated token, from the published configs (MiniMax-M1 arXiv 2506.13585, Figure 1 right)", ""];
    for (const m of this.models) {
      out.push(`${m.name}  (${m.arch.source})`);
      for (const f of m.formulas()) out.push(`  ${f.name} = ${f.text}`);
      out.push(`  symbols: ${Object.entries(m.arch.symbols).map(([k, s]) => `${k}=${s.value}`).join(", ")}`);
      out.push(`  F(t) = ${giga(m.tokenFlops(0))} GFLOPs + ${m.tokenFlops(1) - m.tokenFlops(0)} FLOPs × t`, "");
    }
    out.push("The paper's statements (M1 / DeepSeek-R1 FLOPs):");
    for (const c of this.claims()) {
      const want = c.bound === "below" ? `< ${c.paperValue}` : `≈ ${c.paperValue} (±${ABOUT_TOLERANCE})`;
      out.push(`  "${c.text}"`);
      out.push(`    G = ${c.generatedTokens.toLocaleString("en-US")}: cumulative ${c.cumulativeRatio.toFixed(3)} ${mark(c.holdsCumulative)}, per token ${c.perTokenRatio.toFixed(3)} ${mark(c.holdsPerToken)}  (paper: ${want})`);
    }
    const fig = figure1Data();
    out.push("", `Figure 1 readings vs ours (cumulative FLOPs; ${fig.readings_note}):`);
    for (const r of tableRows(this.readings())) {
      out.push(`  G = ${String(r.generated_tokens).padStart(6)}  ${String(r.model).padEnd(16)} figure ${r.figure_reading === null ? "   —    " : Number(r.figure_reading).toExponential(2)}  ours ${Number(r.ours).toExponential(2)}${r.ours_over_reading === null ? "" : `  ours/figure ${Number(r.ours_over_reading).toFixed(2)}`}`);
    }
    out.push("", "Decoding memory per sequence (batch 1):");
    for (const r of tableRows(this.memory())) {
      out.push(`  ${String(r.context_tokens).padStart(9)} tokens  ${String(r.model).padEnd(16)} cache ${gib(r.cache_bytes)} GiB  state ${gib(r.state_bytes)} GiB  total ${gib(r.total_bytes)} GiB`);
    }
    out.push("", "Counting assumptions:", ...this.assumptions.map((a) => `  - ${a}`), "", `Source of the statements and readings: ${citation(fig.source)}`);
    return out.join("\n") + "\n";
  }
}

const COLORS = ["#1f77b4", "#ff7f0e", "#d62728"];
const giga = (x: number) => (x / 1e9).toFixed(2);
const gib = (x: unknown) => (Number(x) / 2 ** 30).toFixed(3);
const mark = (ok: boolean) => (ok ? "holds" : "does not hold");
