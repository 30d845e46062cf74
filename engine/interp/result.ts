/** The result of a patching sweep: a (row × column) grid of metric values, as a heatmap and as an Arrow table. */
import { tableFromArrays, type Table } from "apache-arrow";
import { Figure } from "../figure.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "../display.ts";
import { InputError } from "../errors.ts";

export interface GridSpec {
  readonly title: string;
  /** what a row and a column index: "layer", "position", "head", "expert" */
  readonly rowName: string;
  readonly columnName: string;
  readonly rows: readonly number[];
  readonly columns: readonly number[];
  readonly rowLabels: readonly string[];
  readonly columnLabels: readonly string[];
  /** row-major, rows.length × columns.length */
  readonly values: readonly number[];
  /** the metric on the clean and on the corrupted run */
  readonly clean: number;
  readonly corrupted: number;
}

export class PatchingResult {
  constructor(readonly spec: GridSpec) {
    if (spec.values.length !== spec.rows.length * spec.columns.length) {
      throw new InputError(`${spec.title}: ${spec.values.length} values for ${spec.rows.length} × ${spec.columns.length} cells`);
    }
  }

  /** The metric with (row, column) patched, by row and column index (e.g. layer and position). */
  at(row: number, column: number): number {
    const r = this.spec.rows.indexOf(row), c = this.spec.columns.indexOf(column);
    if (r < 0 || c < 0) throw new InputError(`${this.spec.rowName} ${row}, ${this.spec.columnName} ${column} is not in this sweep`);
    return this.spec.values[r * this.spec.columns.length + c];
  }

  /** (value − corrupted) / (clean − corrupted): 0 = no effect, 1 = the clean run's metric fully restored. */
  normalized(value: number): number {
    return (value - this.spec.corrupted) / (this.spec.clean - this.spec.corrupted);
  }

  /** The grid as rows of normalised values. */
  grid(): number[][] {
    const w = this.spec.columns.length;
    return this.spec.rows.map((_, r) => this.spec.values.slice(r * w, (r + 1) * w).map((v) => this.normalized(v)));
  }

  /** The cells ordered by normalised effect, largest first. */
  top(k = 5): { row: number; column: number; label: string; value: number; normalized: number }[] {
    const { rows, columns, rowLabels, columnLabels, values } = this.spec;
    return values
      .map((value, i) => ({ r: Math.floor(i / columns.length), c: i % columns.length, value }))
      .sort((a, b) => Math.abs(this.normalized(b.value)) - Math.abs(this.normalized(a.value)))
      .slice(0, k)
      .map(({ r, c, value }) => ({ row: rows[r], column: columns[c], label: `${rowLabels[r]} × ${columnLabels[c]}`, value, normalized: this.normalized(value) }));
  }

  /** One row per cell: row and column index and label, the metric, its normalised value. */
  table(): Table {
    const { rows, columns, rowLabels, columnLabels, values, rowName, columnName } = this.spec;
    const cells = values.map((_, i) => [Math.floor(i / columns.length), i % columns.length] as const);
    return tableFromArrays({
      [rowName]: Int32Array.from(cells, ([r]) => rows[r]),
      [`${rowName}_label`]: cells.map(([r]) => rowLabels[r]),
      [columnName]: Int32Array.from(cells, ([, c]) => columns[c]),
      [`${columnName}_label`]: cells.map(([, c]) => columnLabels[c]),
      metric: Float64Array.from(values),
      normalized: Float64Array.from(values, (v) => this.normalized(v)),
    });
  }

  plot(): Figure {
    const { rowLabels, columnLabels, rowName, columnName, title } = this.spec;
    return new Figure(
      [{
        type: "heatmap", z: this.grid(), x: columnLabels, y: rowLabels, colorscale: "RdBu", zmid: 0, reversescale: true,
        colorbar: { title: { text: "restored" } },
        hovertemplate: `${rowName} %{y}, ${columnName} %{x}: %{z:.3f}<extra></extra>`,
      }],
      { yaxis: { autorange: "reversed", automargin: true }, xaxis: { tickangle: -60, automargin: true }, height: Math.max(320, 120 + 28 * rowLabels.length) },
      title,
    );
  }

  [DISPLAY](): MimeBundle {
    const fig = this.plot()[DISPLAY]();
    const { clean, corrupted } = this.spec;
    const best = this.top(3).map((t) => `${t.label}: ${t.normalized.toFixed(3)}`).join("; ");
    const note = `metric clean ${clean.toFixed(4)}, corrupted ${corrupted.toFixed(4)}; colour = (patched − corrupted) / (clean − corrupted). Strongest: ${best}. .table() has every cell.`;
    return { ...fig, ...htmlBundle(`${fig["text/html"]}<p><small>${escapeHtml(note)}</small></p>`, `${fig["text/plain"]}\n${note}`) };
  }
}
