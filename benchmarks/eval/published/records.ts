// Reads a published dataset file as the user downloaded it: JSON Lines, JSON (a list of records, or an object
// holding one under a split name), CSV with a header row, or Parquet (hyparquet). Records come back as plain
// objects (Parquet's 64-bit integers as numbers); `Fields` reads typed fields with errors that name the file,
// the record and the field.
import fs from "node:fs";
import path from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { InputError } from "../../../engine/errors.ts";
import { readJsonl } from "../jsonl.ts";

export type DataRecord = Record<string, unknown>;

export const RECORD_FORMATS = [".jsonl", ".json", ".csv", ".parquet"];

export async function readRecords(file: string): Promise<DataRecord[]> {
  if (!fs.existsSync(file)) throw new InputError(`${file}: no such file`);
  const ext = path.extname(file).toLowerCase();
  switch (ext) {
    case ".jsonl":
      return readJsonl(file);
    case ".json":
      return readJsonRecords(file);
    case ".csv":
      return readCsv(file);
    case ".parquet":
      return readParquet(file);
    default:
      throw new InputError(`${file}: unknown data format "${ext}" (have ${RECORD_FORMATS.join(", ")})`);
  }
}

function readJsonRecords(file: string): DataRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new InputError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  // {"test": [...]} as some dataset dumps have it: the one list inside
  if (isObject(value)) {
    const lists = Object.values(value).filter(Array.isArray);
    if (lists.length === 1) value = lists[0];
  }
  if (!Array.isArray(value)) throw new InputError(`${file}: expected a JSON list of records (or an object holding one list)`);
  value.forEach((r, i) => {
    if (!isObject(r)) throw new InputError(`${file}: record ${i} is not a JSON object`);
  });
  return value as DataRecord[];
}

function readCsv(file: string): DataRecord[] {
  try {
    return parseCsv(fs.readFileSync(file, "utf8"), { columns: true, skip_empty_lines: true, bom: true, relax_column_count: false }) as DataRecord[];
  } catch (e) {
    throw new InputError(`${file}: not a CSV file with a header row (${(e as Error).message})`);
  }
}

async function readParquet(file: string): Promise<DataRecord[]> {
  let rows: DataRecord[];
  try {
    rows = await parquetReadObjects({ file: await asyncBufferFromFile(file) });
  } catch (e) {
    throw new InputError(`${file}: cannot read as Parquet (${(e as Error).message})`);
  }
  return rows.map((r) => withNumbers(r) as DataRecord);
}

function withNumbers(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(withNumbers);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withNumbers(x)]));
  return v;
}

/** Typed access to one record's fields; every error names the file, the record and the field. */
export class Fields {
  constructor(private readonly record: DataRecord, private readonly where: string) {}

  private fail(field: string, what: string): never {
    const got = this.record[field];
    throw new InputError(`${this.where}: field "${field}" must be ${what}, got ${got === undefined ? "nothing" : JSON.stringify(got).slice(0, 80)}`);
  }

  /** The first of `names` present (datasets name the same field differently), as a non-empty string; numbers are written out. */
  string(...names: string[]): string {
    const name = names.find((n) => this.record[n] !== undefined && this.record[n] !== null) ?? names[0];
    const v = this.record[name];
    if (typeof v === "number") return String(v);
    if (typeof v !== "string" || v.trim() === "") this.fail(name, names.length > 1 ? `a non-empty string (or one of ${names.slice(1).join(", ")})` : "a non-empty string");
    return v;
  }

  optionalString(name: string): string | undefined {
    const v = this.record[name];
    if (v === undefined || v === null || v === "") return undefined;
    return this.string(name);
  }

  stringList(name: string): string[] {
    let v = this.record[name];
    if (typeof v === "string" && v.trim().startsWith("[")) v = parseJson(v, `${this.where}: field "${name}"`);
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) this.fail(name, "a list of strings");
    return v as string[];
  }

  /** A field holding JSON, either parsed already (Parquet, JSON) or as a JSON string (CSV, some JSONL dumps). */
  json(name: string): unknown {
    const v = this.record[name];
    if (v === undefined || v === null) this.fail(name, "present");
    return typeof v === "string" ? parseJson(v, `${this.where}: field "${name}"`) : v;
  }

  raw(name: string): unknown {
    return this.record[name];
  }
}

export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

/** A record's place for error messages: file, index and id when it has one. */
export function recordWhere(file: string, index: number, id?: unknown): string {
  return `${file} record ${index}${typeof id === "string" || typeof id === "number" ? ` (${id})` : ""}`;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
