/**
 * MIME bundles for rich display in notebooks. An object shows itself in the m1 kernel (and Deno's) by having a
 * `[DISPLAY]()` method that returns one of these bundles. Pure functions: no kernel import, no global state.
 *
 * Figures carry `application/vnd.plotly.v1+json` plus an offline `text/html` fallback. The fallback draws with
 * `window.Plotly`; the library itself is defined once per page by `plotlyLibraryScript()` (the kernel puts it in
 * front of the first figure of a session, the `m1 run` report in its head). A figure whose HTML runs before the
 * library queues its drawing until the library arrives.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Table } from "apache-arrow";

export const DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";
export const DATARESOURCE_MIME = "application/vnd.dataresource+json";

/** MIME type → data (`text/plain` always present). */
export type MimeBundle = Record<string, unknown> & { "text/plain": string };

export interface Displayable {
  [DISPLAY](): MimeBundle;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "#39" }[c]};`);
}

export function htmlBundle(html: string, text: string): MimeBundle {
  return { "text/html": html, "text/plain": text };
}

export interface PlotlyFigure {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

/** JSON that is safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

let figureIds = 0;

export function plotlyBundle(figure: PlotlyFigure, options: { title?: string } = {}): MimeBundle {
  const layout = { ...(options.title ? { title: { text: options.title } } : {}), ...figure.layout };
  const fig = { data: figure.data, layout, config: { responsive: true, ...figure.config } };
  const id = `m1-plot-${process.pid}-${Date.now().toString(36)}-${figureIds++}`;
  const html =
    `<div id="${id}" class="m1-plotly" style="min-height:360px">This figure is drawn by plotly.js: run the cell (or trust the notebook) to see it.</div>\n` +
    `<script>(function () {\n  var fig = ${scriptJson(fig)};\n` +
    `  function draw() { var el = document.getElementById("${id}"); if (el) { el.textContent = ""; window.Plotly.newPlot(el, fig.data, fig.layout, fig.config); } }\n` +
    `  if (window.Plotly) draw(); else (window.__m1PlotlyQueue = window.__m1PlotlyQueue || []).push(draw);\n})();</script>`;
  const traces = figure.data.map((t) => String(t.type ?? "scatter"));
  const text = `${options.title ?? "Figure"} (${traces.length} trace${traces.length === 1 ? "" : "s"}: ${[...new Set(traces)].join(", ")})`;
  return { [PLOTLY_MIME]: fig, "text/html": html, "text/plain": text };
}

let plotlySource: string | undefined;

/** A <script> defining `window.Plotly` (once per page, offline: the library inline) and drawing queued figures. */
export function plotlyLibraryScript(): string {
  plotlySource ??= readFileSync(createRequire(import.meta.url).resolve("plotly.js-dist-min"), "utf8");
  return (
    `<script>if (!window.Plotly) { (function (module) {\n${plotlySource}\n}).call(window); }\n` +
    `(window.__m1PlotlyQueue || []).splice(0).forEach(function (draw) { draw(); });</script>`
  );
}

/** A value of an Arrow cell as JSON (int64 as number when exact, else string; dates as ISO strings). */
export function jsonValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  if (v instanceof Date) return v.toISOString();
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, jsonValue);
  if (typeof v === "object") {
    const o = v as { toJSON?: () => unknown; toArray?: () => unknown };
    if (typeof o.toArray === "function") return jsonValue(o.toArray());
    if (typeof o.toJSON === "function") return jsonValue(o.toJSON());
    if (Array.isArray(v)) return v.map(jsonValue);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  }
  return v;
}

function cellText(v: unknown): string {
  const j = jsonValue(v);
  if (j === null) return "null";
  if (typeof j === "number") return Number.isInteger(j) ? String(j) : String(Number(j.toPrecision(6)));
  const s = typeof j === "string" ? j : JSON.stringify(j);
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
}

function resourceType(typeId: string): string {
  if (/^u?int/i.test(typeId)) return "integer";
  if (/^float|decimal/i.test(typeId)) return "number";
  if (/^bool/i.test(typeId)) return "boolean";
  if (/^(utf8|largeutf8|string)/i.test(typeId)) return "string";
  if (/^(date|timestamp)/i.test(typeId)) return "datetime";
  return "any";
}

export interface TableLimits {
  /** rows shown in HTML and text (default 20) */
  maxRows?: number;
  /** columns shown in HTML and text (default 20) */
  maxCols?: number;
  /** rows in the dataresource JSON (default 10,000) */
  maxDataRows?: number;
}

/** An Arrow table as an HTML table (first rows and columns), `application/vnd.dataresource+json` and text. */
export function arrowTableBundle(table: Table, limits: TableLimits = {}): MimeBundle {
  const { maxRows = 20, maxCols = 20, maxDataRows = 10_000 } = limits;
  const fields = table.schema.fields;
  const nRows = table.numRows;
  const cols = fields.slice(0, maxCols).map((f, i) => ({ name: f.name, type: String(f.type), column: table.getChildAt(i)! }));
  const rows = Math.min(nRows, maxRows);
  const size = `${nRows.toLocaleString("en-US")} rows × ${fields.length} columns`;
  const hidden = [nRows > rows ? `first ${rows} rows` : "", fields.length > cols.length ? `first ${cols.length} columns` : ""].filter(Boolean).join(", ");
  const caption = hidden ? `${size} (showing ${hidden})` : size;

  const head = cols.map((c) => `<th>${escapeHtml(c.name)}<br><small>${escapeHtml(c.type)}</small></th>`).join("");
  const body: string[] = [];
  const textRows: string[][] = [["", ...cols.map((c) => c.name)]];
  for (let r = 0; r < rows; r++) {
    const cells = cols.map((c) => cellText(c.column.get(r)));
    body.push(`<tr><th>${r}</th>${cells.map((t) => `<td>${escapeHtml(t)}</td>`).join("")}</tr>`);
    textRows.push([String(r), ...cells]);
  }
  const html =
    `<table class="m1-table"><thead><tr><th></th>${head}</tr></thead><tbody>${body.join("")}</tbody></table>` +
    `<p class="m1-table-caption"><small>${escapeHtml(caption)}</small></p>`;

  const widths = textRows[0].map((_, i) => Math.max(...textRows.map((r) => r[i].length)));
  const text = [caption, ...textRows.map((r) => r.map((t, i) => t.padStart(widths[i])).join("  "))].join("\n");

  const data: Record<string, unknown>[] = [];
  const all = fields.map((f, i) => ({ name: f.name, column: table.getChildAt(i)! }));
  for (let r = 0; r < Math.min(nRows, maxDataRows); r++) data.push(Object.fromEntries(all.map((c) => [c.name, jsonValue(c.column.get(r))])));
  const schema = { fields: fields.map((f) => ({ name: f.name, type: resourceType(String(f.type)) })) };
  return { "text/html": html, [DATARESOURCE_MIME]: { schema, data }, "text/plain": text };
}

/** Shape, dtype, summary statistics and the first values of a tensor. */
export function tensorBundle(tensor: { shape: readonly number[]; dtype: string; values: ArrayLike<number> }, name = "Tensor"): MimeBundle {
  const v = tensor.values;
  let min = Infinity, max = -Infinity, sum = 0, sumSq = 0, nonFinite = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isFinite(x)) { nonFinite++; continue; }
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    sumSq += x * x;
  }
  const n = v.length - nonFinite;
  const mean = n ? sum / n : NaN;
  const std = n ? Math.sqrt(Math.max(0, sumSq / n - mean * mean)) : NaN;
  const fmt = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(5)).toString() : String(x));
  const stats: [string, string][] = [["shape", `[${tensor.shape.join(", ")}]`], ["dtype", tensor.dtype], ["min", fmt(min)], ["max", fmt(max)], ["mean", fmt(mean)], ["std", fmt(std)]];
  if (nonFinite) stats.push(["non-finite", String(nonFinite)]);
  const preview = Array.from({ length: Math.min(v.length, 8) }, (_, i) => fmt(v[i])).join(", ") + (v.length > 8 ? ", …" : "");
  const text = `${name} ${stats.map(([k, x]) => `${k}=${x}`).join(" ")}\n[${preview}]`;
  const html =
    `<div class="m1-tensor"><b>${escapeHtml(name)}</b> <table><tr>${stats.map(([k]) => `<th>${k}</th>`).join("")}</tr>` +
    `<tr>${stats.map(([, x]) => `<td>${escapeHtml(x)}</td>`).join("")}</tr></table><code>[${escapeHtml(preview)}]</code></div>`;
  return { "text/html": html, "text/plain": text };
}
