/**
 * Small display helpers shared by the notebooks: computed markdown, and small matrices shown as numbers (side by
 * side, the way they are written on paper). Everything else the notebooks show comes from the engine's own views.
 */
import type { Table } from "apache-arrow";
import { DISPLAY, arrowTableBundle, escapeHtml, type MimeBundle } from "../engine/display.ts";

type Rows = readonly (readonly number[])[];
/** A matrix as rows of numbers, or anything with `toArray()` returning them (mathjs matrices). */
export type MatrixLike = Rows | { toArray(): unknown };

const rowsOf = (m: MatrixLike): number[][] => {
  const rows = ("toArray" in m ? m.toArray() : m) as unknown[];
  return rows.map((r) => (Array.isArray(r) ? r.map(Number) : [Number(r)]));
};

const fmt = (x: number, digits: number) => (Object.is(x, -0) || x === 0 ? "0" : Math.abs(x) < 10 ** -digits ? x.toExponential(1) : x.toFixed(digits));

/** Markdown computed by a cell (a results table, a sentence with measured numbers). */
export function markdown(text: string): { [DISPLAY](): MimeBundle } {
  return { [DISPLAY]: () => ({ "text/markdown": text, "text/plain": text }) };
}

/** Named small matrices side by side, each as a table of numbers. */
export function matrices(entries: Record<string, MatrixLike>, options: { digits?: number; caption?: string } = {}): { [DISPLAY](): MimeBundle } {
  const digits = options.digits ?? 3;
  const named = Object.entries(entries).map(([name, m]) => [name, rowsOf(m)] as const);
  const table = (rows: number[][]) =>
    `<table class="m1-table" style="display:inline-table;border-collapse:collapse;font:12px monospace">` +
    rows.map((r) => `<tr>${r.map((x) => `<td style="border:1px solid #ddd;padding:1px 5px;text-align:right">${fmt(x, digits)}</td>`).join("")}</tr>`).join("") +
    `</table>`;
  const html =
    (options.caption ? `<p>${escapeHtml(options.caption)}</p>` : "") +
    `<div style="display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start">` +
    named.map(([name, rows]) => `<div><div style="font:12px monospace;margin-bottom:2px">${escapeHtml(name)} <span style="color:#888">${rows.length}×${rows[0]?.length ?? 0}</span></div>${table(rows)}</div>`).join("") +
    `</div>`;
  const text = [
    ...(options.caption ? [options.caption] : []),
    ...named.map(([name, rows]) => `${name} =\n${rows.map((r) => "  " + r.map((x) => fmt(x, digits).padStart(digits + 4)).join(" ")).join("\n")}`),
  ].join("\n");
  return { [DISPLAY]: () => ({ "text/html": html, "text/plain": text }) };
}

/** An Arrow table shown with all its rows (a table as the last expression shows its first 20). */
export function allRows(table: Table, maxRows = 200): { [DISPLAY](): MimeBundle } {
  return { [DISPLAY]: () => arrowTableBundle(table, { maxRows }) };
}
