/** Notebooks (nbformat 4): reading with clear errors, papermill-style parameters, and outputs from iopub messages. */
import { readFileSync, writeFileSync } from "node:fs";
import { InputError } from "../../engine/errors.ts";

export type Output = Record<string, unknown> & { output_type: "stream" | "display_data" | "execute_result" | "error" };

export interface Cell {
  cell_type: "code" | "markdown" | "raw";
  id?: string;
  source: string | string[];
  metadata: { tags?: string[]; [key: string]: unknown };
  outputs?: Output[];
  execution_count?: number | null;
}

export interface Notebook {
  nbformat: number;
  nbformat_minor: number;
  metadata: { kernelspec?: { name?: string; display_name?: string; language?: string }; language_info?: { name?: string }; [key: string]: unknown };
  cells: Cell[];
}

export const sourceOf = (cell: Cell): string => (Array.isArray(cell.source) ? cell.source.join("") : cell.source);

/** Splits text the way Jupyter stores sources: lines, each keeping its newline. */
export const sourceLines = (text: string): string[] => text.match(/[^\n]*\n|[^\n]+$/g) ?? [];

export function readNotebook(path: string): Notebook {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new InputError(`cannot read notebook ${path}: ${(err as Error).message}`);
  }
  let nb: Notebook;
  try {
    nb = JSON.parse(text);
  } catch (err) {
    throw new InputError(`notebook ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof nb !== "object" || nb === null || Array.isArray(nb)) throw new InputError(`notebook ${path}: expected a JSON object`);
  if (nb.nbformat !== 4) throw new InputError(`notebook ${path}: nbformat ${JSON.stringify(nb.nbformat)} is not supported (nbformat 4 is)`);
  if (!Array.isArray(nb.cells)) throw new InputError(`notebook ${path}: "cells" is missing or not a list`);
  nb.metadata ??= {};
  nb.cells.forEach((cell, i) => {
    const where = `notebook ${path}: cell ${i + 1}`;
    if (typeof cell !== "object" || cell === null) throw new InputError(`${where} is not an object`);
    if (!["code", "markdown", "raw"].includes(cell.cell_type)) throw new InputError(`${where} has cell_type ${JSON.stringify(cell.cell_type)} (code, markdown or raw expected)`);
    if (typeof cell.source !== "string" && !(Array.isArray(cell.source) && cell.source.every((s) => typeof s === "string"))) {
      throw new InputError(`${where}: "source" must be a string or a list of strings`);
    }
    cell.metadata ??= {};
  });
  return nb;
}

export function writeNotebook(path: string, nb: Notebook): void {
  writeFileSync(path, JSON.stringify(nb, null, 1) + "\n");
}

/** Parses `-p name=value`: JSON when the value is JSON (numbers, booleans, quoted strings, lists), else a string. */
export function parseParameter(text: string): [string, unknown] {
  const at = text.indexOf("=");
  const name = text.slice(0, at);
  if (at < 0 || !/^[A-Za-z_$][\w$]*$/.test(name)) throw new InputError(`-p ${text}: expected name=value with an identifier as name`);
  const raw = text.slice(at + 1);
  try {
    return [name, JSON.parse(raw)];
  } catch {
    return [name, raw];
  }
}

/**
 * Puts a cell tagged `injected-parameters` right after the cell tagged `parameters` (at the top when there is none),
 * replacing an earlier injected cell. Names declared with `let`/`var` in the parameters cell keep that keyword.
 * Returns the parameter names the parameters cell does not declare.
 */
export function injectParameters(nb: Notebook, params: [string, unknown][]): string[] {
  nb.cells = nb.cells.filter((c) => !c.metadata.tags?.includes("injected-parameters"));
  if (!params.length) return [];
  const at = nb.cells.findIndex((c) => c.cell_type === "code" && c.metadata.tags?.includes("parameters"));
  const declared = at < 0 ? "" : sourceOf(nb.cells[at]);
  const code = params.map(([name, value]) => {
    const keyword = new RegExp(`\\b(let|var)\\s+${name.replace(/\$/g, "\\$")}\\b`).test(declared) ? "let" : "const";
    return `${keyword} ${name} = ${JSON.stringify(value)};`;
  });
  const cell: Cell = { cell_type: "code", source: sourceLines(["// Injected parameters", ...code].join("\n")), metadata: { tags: ["injected-parameters"] }, outputs: [], execution_count: null };
  nb.cells.splice(at + 1, 0, cell);
  return params.map(([n]) => n).filter((n) => !new RegExp(`\\b${n.replace(/\$/g, "\\$")}\\b`).test(declared));
}

/** Turns iopub messages into nbformat outputs; update_display_data reaches outputs of any cell by display_id. */
export class OutputCollector {
  private readonly byDisplayId = new Map<string, Output[]>();

  /** A sink for one cell's messages. */
  forCell(cell: Cell): (type: string, content: Record<string, any>) => void {
    cell.outputs = [];
    let clearOnNext = false;
    return (type, content) => {
      if (type === "clear_output") {
        if (content.wait) clearOnNext = true;
        else cell.outputs = [];
        return;
      }
      if (type === "update_display_data") {
        for (const o of this.byDisplayId.get(content.transient?.display_id) ?? []) Object.assign(o, { data: content.data, metadata: content.metadata ?? {} });
        return;
      }
      if (!["stream", "display_data", "execute_result", "error"].includes(type)) return;
      if (clearOnNext) {
        cell.outputs = [];
        clearOnNext = false;
      }
      const outputs = cell.outputs!;
      const last = outputs[outputs.length - 1];
      if (type === "stream") {
        if (last?.output_type === "stream" && last.name === content.name) last.text = String(last.text) + content.text;
        else outputs.push({ output_type: "stream", name: content.name, text: content.text });
      } else if (type === "error") {
        outputs.push({ output_type: "error", ename: content.ename, evalue: content.evalue, traceback: content.traceback ?? [] });
      } else {
        const out: Output = { output_type: type as Output["output_type"], data: content.data ?? {}, metadata: content.metadata ?? {} };
        if (type === "execute_result") out.execution_count = content.execution_count;
        outputs.push(out);
        const id = content.transient?.display_id;
        if (id) this.byDisplayId.set(id, [...(this.byDisplayId.get(id) ?? []), out]);
      }
    };
  }
}
