// ZebraLogic grid puzzles as published (allenai/ZebraLogicBench, grid_mode parquet: id, size "N*M", puzzle,
// solution {header: ["House", attribute…], rows: [[house, value…], …]}). The model answers with a JSON grid
// {"solution": {"House 1": {attribute: value, …}, …}}; an item scores 1 when every cell is right (puzzle
// accuracy, the number Table 2 reports) and the detail gives the cell accuracy.
import { InputError } from "../../../engine/errors.ts";
import type { EvalItem, Grade, Grader, Task } from "../types.ts";
import { Fields, isObject, readRecords, recordWhere } from "./records.ts";
import { SYSTEM_PROMPTS, paperProtocol } from "./protocol.ts";
import { chatItem, systemPrompt, uniqueIds } from "./items.ts";
import type { LoadOptions } from "./math.ts";

interface Grid { header: string[]; rows: string[][] }

export async function zebraLogicTask(file: string, options: LoadOptions = {}): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items: EvalItem[] = records.map((r, i) => {
    const where = recordWhere(file, i, r.id);
    const f = new Fields(r, where);
    const grid = readGrid(f.json("solution"), `${where}: field "solution"`);
    const item = chatItem(f.string("id"), systemPrompt(options, SYSTEM_PROMPTS.general), zebraPrompt(f.string("puzzle"), grid), JSON.stringify(grid));
    return { ...item, group: f.optionalString("size") ?? "all" };
  });
  uniqueIds(items, file);
  return {
    name: "zebralogic", description: `ZebraLogic (grid mode): ${items.length} puzzles from ${file}`, items, grader: zebraGrader(),
    generation: { maxTokens: 4096 }, protocol: paperProtocol(1), paperRow: "ZebraLogic", groupTitle: "grid size (houses*attributes)",
  };
}

function readGrid(v: unknown, where: string): Grid {
  if (!isObject(v) || !Array.isArray(v.header) || !Array.isArray(v.rows)) throw new InputError(`${where} must be {header: [...], rows: [[...], ...]}`);
  const header = v.header.map(String);
  const rows = v.rows.map((row, k) => {
    if (!Array.isArray(row) || row.length !== header.length) throw new InputError(`${where}: row ${k} must hold ${header.length} values (one per header column)`);
    return row.map(String);
  });
  if (header.length < 2 || rows.length < 1) throw new InputError(`${where} must have a house column, at least one attribute and one row`);
  return { header, rows };
}

/** The expected answer shape, with blanks, built from the solution's header (values are not shown). */
function zebraPrompt(puzzle: string, grid: Grid): string {
  const blank = Object.fromEntries(grid.rows.map((row) => [`${grid.header[0]} ${row[0]}`, Object.fromEntries(grid.header.slice(1).map((h) => [h, "___"]))]));
  return `${puzzle.trim()}\n\nSolve the puzzle. End your answer with the full grid as JSON in exactly this shape, each ___ replaced by a value:\n` +
    "```json\n" + JSON.stringify({ solution: blank }, null, 2) + "\n```";
}

const norm = (s: unknown) => String(s).trim().toLowerCase();

export function zebraGrader(): Grader {
  return {
    name: "zebralogic_grid",
    grade(answer: string, item: EvalItem): Grade {
      const grid = JSON.parse(item.target) as Grid;
      const solution = lastSolution(answer);
      if (!solution) return { score: 0, extracted: null, detail: "no JSON object with a \"solution\" grid in the answer" };
      let right = 0;
      const total = grid.rows.length * (grid.header.length - 1);
      for (const row of grid.rows) {
        const house = solution[`${grid.header[0]} ${row[0]}`];
        if (!isObject(house)) continue;
        grid.header.slice(1).forEach((h, c) => {
          if (house[h] !== undefined && norm(house[h]) === norm(row[c + 1])) right++;
        });
      }
      return { score: right === total ? 1 : 0, extracted: JSON.stringify(solution), detail: `cells ${right}/${total}` };
    },
  };
}

/** The last JSON object in the text that has a "solution" object (in a ```json block or bare). */
function lastSolution(text: string): Record<string, unknown> | null {
  for (let end = text.lastIndexOf("}"); end > 0; end = text.lastIndexOf("}", end - 1)) {
    const start = matchingOpen(text, end);
    if (start < 0) continue;
    try {
      const v = JSON.parse(text.slice(start, end + 1));
      if (isObject(v) && isObject(v.solution)) return v.solution;
    } catch {
      // not JSON: try the object that ends at an earlier brace
    }
  }
  return null;
}

/** Index of the "{" that balances the "}" at `end` (braces inside strings are not told apart), or -1. */
function matchingOpen(text: string, end: number): number {
  let depth = 0;
  for (let i = end; i >= 0; i--) {
    if (text[i] === "}") depth++;
    else if (text[i] === "{" && --depth === 0) return i;
  }
  return -1;
}
