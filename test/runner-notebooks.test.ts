/** Every notebook in notebooks/ runs headless with `m1 run` and no errors. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, tempDir } from "./helpers.ts";

const NOTEBOOKS = join(ROOT, "notebooks");
const built = existsSync(join(ROOT, "native", "build", "Release", "m1native.node"));

for (const name of readdirSync(NOTEBOOKS).filter((f) => f.endsWith(".ipynb"))) {
  test(`notebooks/${name} runs headless`, { timeout: 300_000, skip: !built && "native addon not built" }, async () => {
    const { dir, cleanup } = tempDir("m1-notebooks-");
    try {
      const out = join(dir, name);
      await promisify(execFile)(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "run", join(NOTEBOOKS, name), "--out", out, "--timeout", "240"], { cwd: ROOT });
      const nb = JSON.parse(readFileSync(out, "utf8"));
      const code = nb.cells.filter((c: { cell_type: string }) => c.cell_type === "code");
      assert.ok(code.every((c: { execution_count: number | null }) => c.execution_count !== null));
      assert.ok(code.every((c: { outputs: { output_type: string }[] }) => c.outputs.every((o) => o.output_type !== "error")));
    } finally {
      cleanup();
    }
  });
}
