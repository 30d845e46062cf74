// A finished (or resumed) run: per-sample rows as Arrow, a per-group summary as a markdown table, the score's
// statistics over items (standard error, bootstrap interval, pass@k), tokens used, and a plot of the scores per
// group beside the published numbers when the task has them; a task that reproduces a Table 2 row puts its score
// beside the paper's (`paperComparison`).
import type { Table } from "apache-arrow";
import { DISPLAY, arrowTableBundle, plotlyBundle, type MimeBundle, type PlotlyFigure } from "../../engine/display.ts";
import { columnsTable, tableRows } from "../arrow.ts";
import type { StoredSample } from "./store.ts";
import type { JsonValue, Reference } from "./types.ts";
import { scoreStats, type ScoreStats } from "./stats.ts";
import { table2, type PaperTable } from "../paper/tables.ts";

export interface RunSettings {
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed: number;
  stop: string[];
  thinkingBudget?: number;
  /** completions per item (absent: one) */
  samples?: number;
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
  /** the Table 2 row the task reproduces */
  paperRow: string | null;
}

export interface TokenUsage { samples: number; promptTokens: number; completionTokens: number }

/** US dollars per million tokens, as endpoints price them. */
export interface Pricing { inputPerMillion: number; outputPerMillion: number }

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
    return this.stats()?.mean ?? null;
  }

  /** The item a stored sample belongs to (sample ids are "item#k" when items have several samples). */
  private itemOf(sampleId: string): string {
    return (this.run.settings.samples ?? 1) > 1 ? sampleId.slice(0, sampleId.lastIndexOf("#")) : sampleId;
  }

  /** Each item's sample scores, optionally for one group only. */
  itemScores(group?: string): number[][] {
    const byItem = new Map<string, number[]>();
    for (const s of this.samples) {
      if (group !== undefined && (s.group ?? "all") !== group) continue;
      const id = this.itemOf(s.itemId);
      if (!byItem.has(id)) byItem.set(id, []);
      byItem.get(id)!.push(s.score);
    }
    return [...byItem.values()];
  }

  /** Mean over items, standard error, 95% bootstrap interval, pass@k (null before any sample). */
  stats(group?: string): ScoreStats | null {
    return scoreStats(this.itemScores(group), { seed: this.run.settings.seed });
  }

  /** Tokens of every finished sample (as the endpoint reported them). */
  usage(): TokenUsage {
    return {
      samples: this.samples.length,
      promptTokens: this.samples.reduce((a, s) => a + (s.promptTokens ?? 0), 0),
      completionTokens: this.samples.reduce((a, s) => a + (s.completionTokens ?? 0), 0),
    };
  }

  /** What the finished samples cost at `pricing`, in US dollars. */
  cost(pricing: Pricing): number {
    const u = this.usage();
    return (u.promptTokens * pricing.inputPerMillion + u.completionTokens * pricing.outputPerMillion) / 1e6;
  }

  /** Table 2 with this run's score (in %) beside the published columns, when the task reproduces one of its rows. */
  paperComparison(label = `${this.run.modelName} (this run)`): PaperTable | null {
    const mean = this.meanScore;
    if (!this.run.paperRow || mean === null) return null;
    return table2().withResult(label, { [this.run.paperRow]: Math.round(mean * 1000) / 10 });
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
      .map(([group, scores]) => ({ group, n: scores.length, meanScore: this.stats(group)!.mean, published: this.run.reference?.points[group] ?? null }));
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
    const stats = this.stats();
    if (stats && (stats.items > 1 || stats.samples > 1)) lines.push("", statsText(stats));
    const u = this.usage();
    if (u.promptTokens + u.completionTokens > 0) lines.push("", `tokens: ${u.promptTokens.toLocaleString("en-US")} prompt, ${u.completionTokens.toLocaleString("en-US")} completion over ${u.samples} samples`);
    const published = this.publishedScore();
    if (published !== null) lines.push("", `Table 2, ${this.run.paperRow}, ${this.run.modelName}: ${published.toFixed(1)}% published; this run ${(stats!.mean * 100).toFixed(1)}%`);
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

  /** The published Table 2 score (%) of this run's row and model, if the paper has one. */
  publishedScore(): number | null {
    if (!this.run.paperRow) return null;
    const rows = tableRows(table2().data);
    const row = rows.find((r) => r.task === this.run.paperRow && r.model === this.run.modelName);
    return row && row.score !== null ? Number(row.score) : null;
  }

  /** A summary for --json output and tests. */
  toJSON(): JsonValue {
    return {
      run_id: this.run.runId,
      task: this.run.task,
      backend: this.run.backend,
      model: this.run.modelName,
      mean_score: this.meanScore,
      stats: this.stats() as unknown as JsonValue,
      usage: this.usage() as unknown as JsonValue,
      paper_row: this.run.paperRow,
      published: this.publishedScore(),
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
  if (s.samples) parts.push(`${s.samples} samples per item`);
  return parts.join(", ");
}

function statsText(s: ScoreStats): string {
  const passes = Object.entries(s.passAtK).map(([k, v]) => `pass@${k} ${v.toFixed(3)}`).join(", ");
  return `mean ${s.mean.toFixed(3)} ± ${s.stderr.toFixed(3)} (standard error over ${s.items} items, ${s.samples} samples); ` +
    `95% bootstrap interval [${s.ci95[0].toFixed(3)}, ${s.ci95[1].toFixed(3)}]${passes ? `; ${passes}` : ""}`;
}

