// A finished (or resumed) run: per-sample rows as Arrow, a per-group summary as a markdown table, and a plot of
// the scores per group beside the published numbers when the task has them.
import type { Table } from "apache-arrow";
import { DISPLAY, arrowTableBundle, plotlyBundle, type MimeBundle, type PlotlyFigure } from "../../engine/display.ts";
import { columnsTable } from "../arrow.ts";
import type { StoredSample } from "./store.ts";
import type { JsonValue, Reference } from "./types.ts";

export interface RunSettings {
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed: number;
  stop: string[];
  thinkingBudget?: number;
}

export interface GroupSummary { group: string; n: number; meanScore: number; published: number | null }

export interface RunDescription {
  runId: string;
  task: string;
  description: string;
  backend: string;
  modelName: string;
  settings: RunSettings;
  /** group order for reports */
  groups: string[];
  groupTitle: string;
  reference: Reference | null;
}

export class RunResult {
  constructor(
    readonly run: RunDescription,
    /** every finished sample, in item order */
    readonly samples: StoredSample[],
    /** item ids computed by this invocation */
    readonly computed: string[],
    /** item ids read from the store (finished by an earlier invocation) */
    readonly cached: string[],
    readonly failures: { itemId: string; error: string }[],
  ) {}

  get meanScore(): number | null {
    return this.samples.length ? mean(this.samples.map((s) => s.score)) : null;
  }

  byGroup(): GroupSummary[] {
    const groups = new Map<string, number[]>();
    for (const g of this.run.groups) groups.set(g, []);
    for (const s of this.samples) {
      const g = s.group ?? "all";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(s.score);
    }
    return [...groups]
      .filter(([, scores]) => scores.length > 0)
      .map(([group, scores]) => ({ group, n: scores.length, meanScore: mean(scores), published: this.run.reference?.points[group] ?? null }));
  }

  /** One row per sample. */
  toArrow(): Table {
    const col = <K extends keyof StoredSample>(k: K) => this.samples.map((s) => s[k] as number | string | null);
    return columnsTable({
      item_id: col("itemId"), group: col("group"), score: col("score"), extracted: col("extracted"), target: col("target"),
      answer: col("answer"), response: col("response"), thinking: col("thinking"), detail: col("detail"),
      finish_reason: col("finishReason"), prompt_tokens: col("promptTokens"), completion_tokens: col("completionTokens"),
      latency_ms: col("latencyMs"), prompt: col("prompt"),
    });
  }

  /** One row per group, with the published score where there is one. */
  summaryTable(): Table {
    const rows = this.byGroup();
    return columnsTable({
      group: rows.map((r) => r.group),
      n: rows.map((r) => r.n),
      score: rows.map((r) => r.meanScore),
      published: rows.map((r) => r.published),
    });
  }

  markdown(): string {
    const { run } = this;
    const ref = run.reference;
    const lines = [
      `**${run.task}** on \`${run.modelName}\` (${run.backend}); ${settingsText(run.settings)}`,
      "",
      `| group | n | score |${ref ? " published |" : ""}`,
      `|---|---|---|${ref ? "---|" : ""}`,
      ...this.byGroup().map((g) => `| ${g.group} | ${g.n} | ${g.meanScore.toFixed(3)} |${ref ? ` ${g.published === null ? "–" : g.published.toFixed(2)} |` : ""}`),
      `| **all** | ${this.samples.length} | ${this.meanScore === null ? "–" : this.meanScore.toFixed(3)} |${ref ? " |" : ""}`,
    ];
    if (ref) lines.push("", `published: ${ref.label}; source: ${ref.source}`);
    if (this.failures.length) lines.push("", `${this.failures.length} samples failed (rerun to retry them): ${this.failures.slice(0, 3).map((f) => `${f.itemId}: ${f.error}`).join("; ")}`);
    return lines.join("\n") + "\n";
  }

  figure(): PlotlyFigure {
    const groups = this.byGroup();
    const x = groups.map((g) => g.group);
    const data: Record<string, unknown>[] = [{ type: "bar", name: `${this.run.modelName} (this run)`, x, y: groups.map((g) => g.meanScore) }];
    const ref = this.run.reference;
    if (ref) {
      const shown = x.filter((g) => ref.points[g] !== undefined);
      data.push({ type: "scatter", mode: "lines+markers", name: ref.label, x: shown, y: shown.map((g) => ref.points[g]) });
    }
    return {
      data,
      layout: { title: { text: `${this.run.task}: ${this.run.modelName}, ${settingsText(this.run.settings)}` }, xaxis: { title: { text: this.run.groupTitle }, type: "category" }, yaxis: { title: { text: "score" }, range: [0, 1.05] } },
    };
  }

  [DISPLAY](): MimeBundle {
    const table = arrowTableBundle(this.summaryTable(), { maxRows: 100 });
    const plot = plotlyBundle(this.figure());
    return { ...plot, ...table, "text/html": `${table["text/html"]}${plot["text/html"]}`, "text/markdown": this.markdown(), "text/plain": this.markdown() };
  }

  /** A summary for --json output and tests. */
  toJSON(): JsonValue {
    return {
      run_id: this.run.runId,
      task: this.run.task,
      backend: this.run.backend,
      model: this.run.modelName,
      mean_score: this.meanScore,
      groups: this.byGroup().map((g) => ({ group: g.group, n: g.n, score: g.meanScore, published: g.published })),
      computed: this.computed,
      cached: this.cached,
      failures: this.failures,
    } as JsonValue;
  }
}

function settingsText(s: RunSettings): string {
  const parts = [s.temperature === 0 ? "greedy" : `temperature ${s.temperature}`, `max ${s.maxTokens} tokens`];
  if (s.thinkingBudget !== undefined) parts.push(`thinking budget ${s.thinkingBudget}`);
  if (s.topP !== undefined) parts.push(`top-p ${s.topP}`);
  if (s.topK !== undefined) parts.push(`top-k ${s.topK}`);
  if (s.temperature > 0) parts.push(`seed ${s.seed}`);
  return parts.join(", ");
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
