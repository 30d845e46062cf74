// Prints the paper's tables and the recomputed efficiency claim; with --measure, the same curve measured on our
// engine; with --figures DIR, writes the figures as Plotly JSON.
//   node --import tsx benchmarks/reproduce.ts [--measure mini-80k] [--figures out/]
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { table1, table2 } from "./paper/tables.ts";
import { EfficiencyReport } from "./efficiency/report.ts";
import { measureContextScaling } from "./efficiency/measured.ts";
import { loadLocalModel } from "./registry.ts";

const { values } = parseArgs({ options: { measure: { type: "string" }, figures: { type: "string" } } });
const report = new EfficiencyReport();
const figures: Record<string, unknown> = { "figure1-flops.json": report.figure() };
process.stdout.write(`${table1().text()}\n${table2().text()}\n${report.text()}`);
if (values.measure) {
  const scaling = await measureContextScaling((await loadLocalModel(values.measure)).model);
  process.stdout.write(`\n${values.measure}: ${scaling.text()}`);
  figures["measured-context-scaling.json"] = scaling.figure();
}
if (values.figures) {
  fs.mkdirSync(values.figures, { recursive: true });
  for (const [name, figure] of Object.entries(figures)) fs.writeFileSync(path.join(values.figures, name), JSON.stringify(figure));
  process.stderr.write(`wrote ${Object.keys(figures).join(", ")} to ${values.figures}\n`);
}
