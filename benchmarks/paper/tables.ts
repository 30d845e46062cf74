// The paper's Table 1 and Table 2 as Arrow data (long format: one row per cell) with their source, shown in a
// notebook as the published layout; `withResult` puts a new model's numbers beside the published ones.
import type { Table } from "apache-arrow";
import { DISPLAY, DATARESOURCE_MIME, arrowTableBundle, escapeHtml, type MimeBundle } from "../../engine/display.ts";
import { InputError } from "../../engine/errors.ts";
import { columnsTable, tableRows, type Cell } from "../arrow.ts";
import { table1Data, table2Data, citation, type Source } from "./data.ts";

interface Layout {
  /** columns that identify a row of the printed table; the last one names it (task, quantity) */
  rowKeys: string[];
  /** the column whose values become the printed table's columns */
  columnKey: string;
  valueKey: string;
  /** a boolean column marking cells that carry the footnote */
  footnoteKey?: string;
  format: (value: number) => string;
}

export class PaperTable {
  constructor(
    readonly title: string,
    readonly source: Source,
    /** one row per published cell */
    readonly data: Table,
    private readonly layout: Layout,
    readonly footnote: string | null = null,
  ) {}

  /** The table with `column`'s values added beside the published ones (keyed by task / quantity name). */
  withResult(column: string, values: Record<string, number>): PaperTable {
    const rows = tableRows(this.data);
    const nameKey = this.layout.rowKeys.at(-1)!;
    const added = Object.entries(values).map(([name, value]) => {
      const like = rows.find((r) => r[nameKey] === name);
      if (!like) throw new InputError(`${this.title}: no row "${name}" (have ${[...new Set(rows.map((r) => r[nameKey]))].join(", ")})`);
      const row: Record<string, Cell> = Object.fromEntries(Object.keys(like).map((k) => [k, null]));
      for (const k of this.layout.rowKeys) row[k] = like[k];
      if (this.layout.footnoteKey) row[this.layout.footnoteKey] = false;
      return { ...row, [this.layout.columnKey]: column, [this.layout.valueKey]: value };
    });
    const all = [...rows, ...added];
    const columns = Object.fromEntries(Object.keys(rows[0]).map((k) => [k, all.map((r) => r[k] ?? null)]));
    return new PaperTable(this.title, this.source, columnsTable(columns), this.layout, this.footnote);
  }

  /** The printed layout: one row per task, one column per model (footnoted values get "*"). */
  printed(): { header: string[]; rows: string[][] } {
    const { rowKeys, columnKey, valueKey, footnoteKey } = this.layout;
    const rows = tableRows(this.data);
    const columns = [...new Set(rows.map((r) => String(r[columnKey])))];
    const keyOf = (r: Record<string, Cell>) => rowKeys.map((k) => String(r[k])).join("\u0000");
    const lines = [...new Set(rows.map(keyOf))];
    const body = lines.map((line) => {
      const cells = columns.map((c) => {
        const r = rows.find((x) => keyOf(x) === line && x[columnKey] === c);
        if (!r || r[valueKey] === null) return "–";
        return `${this.layout.format(Number(r[valueKey]))}${footnoteKey && r[footnoteKey] ? "*" : ""}`;
      });
      return [...line.split("\u0000"), ...cells];
    });
    return { header: [...rowKeys, ...columns], rows: body };
  }

  text(): string {
    const { header, rows } = this.printed();
    const md = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
    return [this.title, "", ...md, "", ...(this.footnote ? [this.footnote] : []), `Source: ${citation(this.source)}`].join("\n") + "\n";
  }

  [DISPLAY](): MimeBundle {
    const { header, rows } = this.printed();
    const html =
      `<table class="m1-table"><caption>${escapeHtml(this.title)}</caption><thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>` +
      `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("")}</tbody></table>` +
      `<p><small>${this.footnote ? `${escapeHtml(this.footnote)}. ` : ""}Source: ${escapeHtml(citation(this.source))}</small></p>`;
    return { "text/html": html, [DATARESOURCE_MIME]: arrowTableBundle(this.data)[DATARESOURCE_MIME], "text/markdown": this.text(), "text/plain": this.text() };
  }
}

/** Table 2: core benchmarks of M1-40k/80k and six other reasoning models (score %, thinking budget per model). */
export function table2(): PaperTable {
  const d = table2Data();
  const cells = d.rows.flatMap((row) => d.models.map((model, i) => ({ row, model, score: row.scores[i] })));
  return new PaperTable(
    d.title,
    d.source,
    columnsTable({
      category: cells.map((c) => c.row.category),
      task: cells.map((c) => c.row.task),
      model: cells.map((c) => c.model),
      score: cells.map((c) => c.score),
      footnoted: cells.map((c) => (c.row.footnoted ?? []).includes(c.model)),
      thinking_budget: cells.map((c) => d.thinking_budget[c.model] ?? null),
    }),
    { rowKeys: ["category", "task"], columnKey: "model", valueKey: "score", footnoteKey: "footnoted", format: (v) => v.toFixed(1) },
    d.footnote,
  );
}

/** Table 1: maximum input and output length (tokens) of six reasoning models. */
export function table1(): PaperTable {
  const d = table1Data();
  const cells = d.rows.flatMap((row) => d.models.map((model, i) => ({ quantity: row.quantity, model, tokens: row.values[i] })));
  return new PaperTable(
    d.title,
    d.source,
    columnsTable({ quantity: cells.map((c) => c.quantity), model: cells.map((c) => c.model), tokens: cells.map((c) => c.tokens) }),
    { rowKeys: ["quantity"], columnKey: "model", valueKey: "tokens", format: (v) => v.toLocaleString("en-US") },
  );
}
