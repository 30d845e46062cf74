// The paper's published numbers, read from the JSON files beside this module (each carries its source).
import fs from "node:fs";
import { fileURLToPath } from "node:url";

export interface Source { paper?: string; arxiv?: string; location?: string; document?: string; note?: string }

export interface Table2Data {
  title: string;
  source: Source;
  footnote: string;
  unit: string;
  models: string[];
  thinking_budget: Record<string, number>;
  rows: { category: string; task: string; scores: (number | null)[]; footnoted?: string[] }[];
}

export interface Table1Data {
  title: string;
  source: Source;
  unit: string;
  models: string[];
  rows: { quantity: string; values: number[]; as_printed: string[] }[];
}

export interface Figure1Data {
  title: string;
  source: Source;
  claims: { text: string; generated_tokens: number; bound: "below" | "about"; value: number }[];
  readings_note: string;
  readings: ({ generated_tokens: number } & Record<string, number | null>)[];
}

export interface MiniArithmeticData {
  title: string;
  source: Source;
  digits: number[];
  rows: { checkpoint: string; thinking_budget: number; accuracy: number[] }[];
}

function read<T>(file: string): T {
  return JSON.parse(fs.readFileSync(fileURLToPath(new URL(file, import.meta.url)), "utf8")) as T;
}

export const table2Data = (): Table2Data => read("./table2.json");
export const table1Data = (): Table1Data => read("./table1.json");
export const figure1Data = (): Figure1Data => read("./figure1.json");
export const miniArithmeticData = (): MiniArithmeticData => read("./mini-arithmetic.json");

export function citation(s: Source): string {
  return [s.paper, s.arxiv && `arXiv ${s.arxiv}`, s.document, s.location, s.note].filter(Boolean).join(", ");
}
