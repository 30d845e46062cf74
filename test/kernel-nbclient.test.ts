/** `jupyter execute` (nbclient, Debian python3-nbclient) runs notebooks on the m1 kernel. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { jupyterEnv } from "./kernel-harness.ts";
import { tempDir } from "./helpers.ts";

const run = promisify(execFile);

const notebook = {
  nbformat: 4,
  nbformat_minor: 5,
  metadata: { kernelspec: { name: "m1", display_name: "TypeScript (m1-workbench)", language: "typescript" } },
  cells: [
    { cell_type: "markdown", id: "m", metadata: {}, source: "# nbclient" },
    { cell_type: "code", id: "a", metadata: {}, outputs: [], execution_count: null, source: "const a: number = 2;\nconsole.log('hello from m1');" },
    { cell_type: "code", id: "b", metadata: {}, outputs: [], execution_count: null, source: "import { triple } from './helper.ts';\nawait new Promise((r) => setTimeout(r, 10));\ntriple(a * 7)" },
    { cell_type: "code", id: "c", metadata: {}, outputs: [], execution_count: null, source: "display({ [Symbol.for('Jupyter.display')]: () => ({ 'text/html': '<b>x</b>', 'text/plain': 'x' }) });" },
  ],
};

const EXECUTE = `
import json, sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, kernel_name="m1", timeout=60, resources={"metadata": {"path": sys.argv[2]}}).execute()
print(json.dumps([[c.get("execution_count"), c.get("outputs")] for c in nb.cells if c.cell_type == "code"]))
`;

test("jupyter execute and nbclient run a notebook on the m1 kernel", { timeout: 120_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-nbclient-");
  try {
    const env = jupyterEnv(dir);
    const path = join(dir, "nb.ipynb");
    writeFileSync(path, JSON.stringify(notebook));
    writeFileSync(join(dir, "helper.ts"), "export const triple = (n: number): number => 3 * n;\n"); // no package.json here: loads as CommonJS
    const cli = await run("/usr/bin/jupyter", ["execute", "--kernel_name=m1", path], { env, cwd: dir });
    assert.doesNotMatch(cli.stderr, /Error|Traceback/, cli.stderr);

    const { stdout } = await run("/usr/bin/python3", ["-c", EXECUTE, path, dir], { env, cwd: dir });
    const cells = JSON.parse(stdout) as [number, Record<string, any>[]][];
    assert.deepEqual(cells.map(([count]) => count), [1, 2, 3]);
    assert.deepEqual(cells[0][1], [{ output_type: "stream", name: "stdout", text: "hello from m1\n" }]);
    assert.deepEqual(cells[1][1].map((o) => [o.output_type, o.execution_count, o.data["text/plain"]]), [["execute_result", 2, "42"]]);
    assert.equal(cells[2][1][0].data["text/html"], "<b>x</b>");
  } finally {
    cleanup();
  }
});
