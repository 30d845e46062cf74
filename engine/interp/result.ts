/**
 * The result of a patching sweep over one prompt pair or a dataset of pairs: per pair, a (row × column) grid of metric
 * values; over the pairs, their mean, shown as a heatmap; every pair's cells as an Arrow table with a `pair` column.
 */
import { tableFromArrays, type Table } from "apache-arrow";
import { Figure } from "../figure.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "../display.ts";
import { InputError } from "../errors.ts";

/** What the rows and columns of a sweep are. */
export interface GridAxes {
  readonly title: string;
  /** what a row and a column index: "layer", "position", "head", "expert" */
  readonly rowName: string;
  readonly columnName: string;
  readonly rows: readonly number[];
  readonly columns: readonly number[];
  readonly rowLabels: readonly string[];
  readonly columnLabels: readonly string[];
}

/** One pair's grid: row-major, rows × columns; null where the pair has no such cell (a position past its end). */
export interface PairGrid {
  readonly values: readonly (number | null)[];
  /** the metric on the pair's clean and corrupted run */
  readonly clean: number;
  readonly corrupted: number;
}

export interface GridSpec extends GridAxes {
  /** the mean over the pairs, row-major (see PatchingResult) */
  readonly values: readonly number[];
  /** the mean metric of the clean and of the corrupted runs */
  readonly clean: number;
  readonly corrupted: number;
  readonly pairs: readonly PairGrid[];
}

export class PatchingResult {
  readonly spec: GridSpec;

  /**
   * A cell's aggregated value is the mean of the pairs' patched metrics; where only some pairs have the cell, it is
   * the mean corrupted metric plus the mean change (patched − corrupted) over the pairs that have it.
   */
  constructor(axes: GridAxes, pairs: readonly PairGrid[]) {
    const cells = axes.rows.length * axes.columns.length;
    if (pairs.length === 0) throw new InputError(`${axes.title}: no pairs`);
    pairs.forEach((p, i) => {
      if (p.values.length !== cells) throw new InputError(`${axes.title}: pair ${i} has ${p.values.length} values for ${axes.rows.length} × ${axes.columns.length} cells`);
    });
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const corrupted = mean(pairs.map((p) => p.corrupted));
    const values = Array.from({ length: cells }, (_, c) => {
      const present = pairs.filter((p) => p.values[c] !== null);
      if (present.length === 0) throw new InputError(`${axes.title}: no pair has cell ${c}`);
      return present.length === pairs.length ? mean(pairs.map((p) => p.values[c]!)) : corrupted + mean(present.map((p) => p.values[c]! - p.corrupted));
    });
    this.spec = { ...axes, values, clean: mean(pairs.map((p) => p.clean)), corrupted, pairs };
  }

  /** The metric with (row, column) patched, by row and column index (e.g. layer and position): the mean over the
   *  pairs, or pair `pair`'s own. */
  at(row: number, column: number, pair?: number): number {
    const r = this.spec.rows.indexOf(row), c = this.spec.columns.indexOf(column);
    if (r < 0 || c < 0) throw new InputError(`${this.spec.rowName} ${row}, ${this.spec.columnName} ${column} is not in this sweep`);
    const i = r * this.spec.columns.length + c;
    if (pair === undefined) return this.spec.values[i];
    const value = this.pairGrid(pair).values[i];
    if (value === null) throw new InputError(`pair ${pair} has no ${this.spec.columnName} ${column}`);
    return value;
  }

  /** The sweep of pair `i` alone (its own clean and corrupted metric; only the cells it has). */
  pair(i: number): PatchingResult {
    const grid = this.pairGrid(i);
    const { rows, columns, columnLabels } = this.spec;
    const kept = columns.flatMap((_, c) => (rows.some((_, r) => grid.values[r * columns.length + c] !== null) ? [c] : []));
    return new PatchingResult(
      { ...this.spec, title: `${this.spec.title} (pair ${i})`, columns: kept.map((c) => columns[c]), columnLabels: kept.map((c) => columnLabels[c]) },
      [{ ...grid, values: rows.flatMap((_, r) => kept.map((c) => grid.values[r * columns.length + c])) }],
    );
  }

  /** (value − corrupted) / (clean − corrupted): 0 = no effect, 1 = the clean run's metric fully restored (by the
   *  pairs' mean metrics, or by pair `pair`'s). */
  normalized(value: number, pair?: number): number {
    const { clean, corrupted } = pair === undefined ? this.spec : this.pairGrid(pair);
    return (value - corrupted) / (clean - corrupted);
  }

  /** The aggregated grid as rows of normalised values. */
  grid(): number[][] {
    const w = this.spec.columns.length;
    return this.spec.rows.map((_, r) => this.spec.values.slice(r * w, (r + 1) * w).map((v) => this.normalized(v)));
  }

  /** The aggregated cells ordered by normalised effect, largest first. */
  top(k = 5): { row: number; column: number; label: string; value: number; normalized: number }[] {
    const { rows, columns, rowLabels, columnLabels, values } = this.spec;
    return values
      .map((value, i) => ({ r: Math.floor(i / columns.length), c: i % columns.length, value }))
      .sort((a, b) => Math.abs(this.normalized(b.value)) - Math.abs(this.normalized(a.value)))
      .slice(0, k)
      .map(({ r, c, value }) => ({ row: rows[r], column: columns[c], label: `${rowLabels[r]} × ${columnLabels[c]}`, value, normalized: this.normalized(value) }));
  }

  /** One row per pair and cell it has: the pair, row and column index and label, the metric, and its value
   *  normalised by that pair's clean and corrupted metric. */
  table(): Table {
    const { rows, columns, rowLabels, columnLabels, rowName, columnName, pairs } = this.spec;
    const cells = pairs.flatMap((p, pair) => p.values.flatMap((v, i) => (v === null ? [] : [{ pair, r: Math.floor(i / columns.length), c: i % columns.length, v }])));
    return tableFromArrays({
      pair: Int32Array.from(cells, (x) => x.pair),
      [rowName]: Int32Array.from(cells, (x) => rows[x.r]),
      [`${rowName}_label`]: cells.map((x) => rowLabels[x.r]),
      [columnName]: Int32Array.from(cells, (x) => columns[x.c]),
      [`${columnName}_label`]: cells.map((x) => columnLabels[x.c]),
      metric: Float64Array.from(cells, (x) => x.v),
      normalized: Float64Array.from(cells, (x) => this.normalized(x.v, x.pair)),
    });
  }

  plot(): Figure {
    const { rowLabels, columnLabels, rowName, columnName, title, pairs } = this.spec;
    return new Figure(
      [{
        type: "heatmap", z: this.grid(), x: columnLabels, y: rowLabels, colorscale: "RdBu", zmid: 0, reversescale: true,
        colorbar: { title: { text: "restored" } },
        hovertemplate: `${rowName} %{y}, ${columnName} %{x}: %{z:.3f}<extra></extra>`,
      }],
      { yaxis: { autorange: "reversed", automargin: true }, xaxis: { tickangle: -60, automargin: true }, height: Math.max(320, 120 + 28 * rowLabels.length) },
      pairs.length > 1 ? `${title}, mean over ${pairs.length} pairs` : title,
    );
  }

  [DISPLAY](): MimeBundle {
    const fig = this.plot()[DISPLAY]();
    const { clean, corrupted, pairs } = this.spec;
    const best = this.top(3).map((t) => `${t.label}: ${t.normalized.toFixed(3)}`).join("; ");
    const over = pairs.length > 1 ? `mean over ${pairs.length} pairs: ` : "";
    const note = `${over}metric clean ${clean.toFixed(4)}, corrupted ${corrupted.toFixed(4)}; colour = (patched − corrupted) / (clean − corrupted). ` +
      `Strongest: ${best}. .table() has every cell${pairs.length > 1 ? " of every pair, .pair(i) one pair's sweep" : ""}.`;
    return { ...fig, ...htmlBundle(`${fig["text/html"]}<p><small>${escapeHtml(note)}</small></p>`, `${fig["text/plain"]}\n${note}`) };
  }

  private pairGrid(i: number): PairGrid {
    const grid = this.spec.pairs[i];
    if (!Number.isInteger(i) || !grid) throw new InputError(`pair ${i} is outside the ${this.spec.pairs.length} pairs of this sweep`);
    return grid;
  }
}
