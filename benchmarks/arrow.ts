// Builds Arrow tables from plain columns with explicit types (numbers → Float64, strings → Utf8, booleans → Bool;
// null allowed anywhere), and reads them back as plain rows.
import { Table, vectorFromArray, Float64, Utf8, Bool } from "apache-arrow";

export type Cell = number | string | boolean | null;
export type Columns = Record<string, Cell[]>;

export function columnsTable(columns: Columns): Table {
  const vectors = Object.fromEntries(Object.entries(columns).map(([name, values]) => [name, vectorFromArray(values, typeOf(name, values))]));
  return new Table(vectors);
}

/** Rows as plain objects (Arrow rows are proxies). */
export function tableRows(table: Table): Record<string, Cell>[] {
  return table.toArray().map((row) => row.toJSON() as Record<string, Cell>);
}

function typeOf(name: string, values: Cell[]): Float64 | Utf8 | Bool {
  const kinds = new Set(values.filter((v) => v !== null).map((v) => typeof v));
  if (kinds.size > 1) throw new TypeError(`column "${name}" mixes ${[...kinds].join(" and ")}`);
  const [kind = "number"] = kinds;
  if (kind === "string") return new Utf8();
  if (kind === "boolean") return new Bool();
  return new Float64();
}
