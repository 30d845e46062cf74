/**
 * The notebooks users open: the numbered newcomer's path is complete and stored clean, and every notebook in
 * notebooks/ runs headless with `m1 run` and no errors (each checks what it shows, so a wrong result fails here).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, tempDir } from "./helpers.ts";

const NOTEBOOKS = join(ROOT, "notebooks");
const built = existsSync(join(ROOT, "native", "build", "Release", "m1native.node"));
const PATH = [
  "01-quickstart", "02-lightning-attention", "03-hybrid-stack", "04-mixture-of-experts",
  "05-swapping-40k-80k", "06-benchmark-suites", "07-paper-tables", "08-cispo", "09-interpretability-methods", "10-reproducing-table-2",
  "11-fine-tuning",
];

interface NbCell { cell_type: string; id?: string; source: string | string[]; metadata: { tags?: string[] }; outputs?: unknown[]; execution_count?: number | null }
const read = (name: string) => JSON.parse(readFileSync(join(NOTEBOOKS, name), "utf8")) as { nbformat: number; metadata: { kernelspec?: { name?: string } }; cells: NbCell[] };
/** Parameters CI gives a notebook whose stored ones run longer than the test allows (`m1 run -p`). */
const CI_PARAMETERS: Record<string, string[]> = { "08-cispo.ipynb": ["trainSteps=4"] };
const source = (c: NbCell) => (Array.isArray(c.source) ? c.source.join("") : c.source);

test("the newcomer's notebooks are all there, on the m1 kernel, stored without outputs, and check what they show", () => {
  const numbered = readdirSync(NOTEBOOKS).filter((f) => /^\d\d-.*\.ipynb$/.test(f)).sort();
  assert.deepEqual(numbered, PATH.map((n) => `${n}.ipynb`));
  for (const name of numbered) {
    const nb = read(name);
    assert.equal(nb.nbformat, 4, name);
    assert.equal(nb.metadata.kernelspec?.name, "m1", `${name} runs on the m1 kernel`);
    const ids = nb.cells.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length, `${name}: cell ids are unique`);
    const code = nb.cells.filter((c) => c.cell_type === "code");
    assert.ok(code.every((c) => (c.outputs ?? []).length === 0 && (c.execution_count ?? null) === null), `${name} is stored without outputs (run it to see them)`);
    assert.equal(code.filter((c) => c.metadata.tags?.includes("parameters")).length <= 1, true, `${name}: at most one parameters cell`);
    assert.ok(nb.cells[0].cell_type === "markdown" && /^# \d+ · /.test(source(nb.cells[0])), `${name} opens with its numbered title`);
    const checks = code.filter((c) => /throw new Error\(/.test(source(c))).length;
    assert.ok(checks >= 3, `${name}: only ${checks} cells check their results`);
  }
});

for (const name of readdirSync(NOTEBOOKS).filter((f) => f.endsWith(".ipynb"))) {
  test(`notebooks/${name} runs headless`, { timeout: 300_000, skip: !built && "native addon not built" }, async () => {
    const { dir, cleanup } = tempDir("m1-notebooks-");
    try {
      const out = join(dir, name);
      await promisify(execFile)(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "run", join(NOTEBOOKS, name), "--out", out, "--timeout", "240", ...(CI_PARAMETERS[name] ?? []).flatMap((p) => ["-p", p])], { cwd: ROOT });
      const nb = JSON.parse(readFileSync(out, "utf8"));
      const code = nb.cells.filter((c: { cell_type: string }) => c.cell_type === "code");
      assert.ok(code.every((c: { execution_count: number | null }) => c.execution_count !== null));
      assert.ok(code.every((c: { outputs: { output_type: string }[] }) => c.outputs.every((o) => o.output_type !== "error")));
    } finally {
      cleanup();
    }
  });
}
