// Reads a JSONL file (one JSON object per line; blank lines skipped); errors name the file and line.
import fs from "node:fs";
import { InputError } from "../../engine/errors.ts";

export function readJsonl(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new InputError(`${file}: cannot read (${(e as Error).message})`);
  }
  const records: Record<string, unknown>[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new InputError(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InputError(`${file}:${i + 1}: each line must be a JSON object`);
    records.push(value as Record<string, unknown>);
  });
  return records;
}
