/** `m1 run`: headless notebooks on our kernel, parameters, per-cell timeout, failures that keep every output. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { FIXTURES, ROOT, tempDir } from "./helpers.ts";
import type { Notebook } from "../kernel/notebook/notebook.ts";

const M1 = join(ROOT, "kernel", "bin", "m1.mjs");
const FIGURE = join(FIXTURES, "notebooks", "figure.ipynb");

async function m1(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [M1, ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function notebook(dir: string, name: string, cells: (string | { source: string; tags: string[] })[], metadata: object = {}): string {
  const path = join(dir, name);
  const nb = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata,
    cells: cells.map((c, i) => ({
      cell_type: "code",
      id: `cell-${i}`,
      metadata: typeof c === "string" ? {} : { tags: c.tags },
      source: typeof c === "string" ? c : c.source,
      outputs: [],
      execution_count: null,
    })),
  };
  writeFileSync(path, JSON.stringify(nb));
  return path;
}

const read = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Notebook;

test("runs a notebook with parameters: injected cell after the parameters cell, counts and outputs written", { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-run-");
  try {
    const out = join(dir, "out.ipynb");
    const r = await m1(["run", FIGURE, "--out", out, "-p", "points=7", "-p", "title=seven", "-p", "unused=1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /parameter "unused" is not declared/);
    const nb = read(out);
    const tags = nb.cells.map((c) => c.metadata.tags?.[0] ?? null);
    assert.deepEqual(tags, [null, "parameters", "injected-parameters", null, null]);
    assert.equal([nb.cells[2].source].flat().join(""), '// Injected parameters\nconst points = 7;\nlet title = "seven";\nconst unused = 1;');
    assert.deepEqual(nb.cells.filter((c) => c.cell_type === "code").map((c) => c.execution_count), [1, 2, 3, 4]);
    const figure = nb.cells[3].outputs![0] as unknown as { data: Record<string, any> };
    assert.deepEqual(figure.data["application/vnd.plotly.v1+json"].data[0].x, [0, 1, 2, 3, 4, 5, 6]);
    assert.match(figure.data["text/html"], /window\.Plotly/);
    const table = nb.cells[4].outputs!;
    assert.deepEqual(table[0], { output_type: "stream", name: "stdout", text: "7 points\n" });
    assert.equal((table[1] as unknown as { data: Record<string, any> }).data["application/vnd.dataresource+json"].data.length, 7);
    assert.equal(nb.metadata.language_info?.name, "typescript");
  } finally {
    cleanup();
  }
});

test("a failing cell: exit 1 naming the cell, outputs so far and the error written, later cells not run", { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-run-");
  try {
    const path = notebook(dir, "fails.ipynb", ["console.log('before');\nconst n = 1;", "const m = n + 1;\nthrow new Error(`broken at ${m}`);", "console.log('never')"]);
    const out = join(dir, "out.ipynb");
    const html = join(dir, "report.html");
    const r = await m1(["run", path, "--out", out, "--html", html]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cell 2 \(id cell-1\): const m = n \+ 1;\n\s+Error: broken at 2/);
    const nb = read(out);
    assert.deepEqual(nb.cells[0].outputs, [{ output_type: "stream", name: "stdout", text: "before\n" }]);
    assert.deepEqual(nb.cells[1].outputs!.map((o) => [o.output_type, o.ename, o.evalue]), [["error", "Error", "broken at 2"]]);
    assert.deepEqual(nb.cells[2].outputs, []);
    assert.deepEqual(nb.cells.map((c) => c.execution_count), [1, 2, null]);
    assert.match(readFileSync(html, "utf8"), /The run stopped at cell 2[\s\S]*broken at 2/);
  } finally {
    cleanup();
  }
});

test("--timeout interrupts a cell that runs too long and fails the run", { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-run-");
  try {
    const path = notebook(dir, "slow.ipynb", ["let spins = 0;", "while (!signal.aborted) { spins++; await new Promise((r) => setTimeout(r, 10)); }"]);
    const out = join(dir, "out.ipynb");
    const r = await m1(["run", path, "--out", out, "--timeout", "1"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cell 2 .*\n\s+the cell ran longer than --timeout 1 s and was interrupted/);
    const outputs = read(out).cells[1].outputs!;
    assert.equal(outputs.at(-1)!.ename, "CellTimeoutError");
  } finally {
    cleanup();
  }
});

/** Runs a notebook that ends its kernel: the run ends, exits 1 naming cell 2, and --out/--html hold cell 1's output. */
async function runDying(cells: string[], expected: RegExp, flags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Notebook> {
  const { dir, cleanup } = tempDir("m1-run-");
  try {
    const path = notebook(dir, "dies.ipynb", ["console.log('before');", ...cells, "console.log('never');"]);
    const out = join(dir, "out.ipynb");
    const html = join(dir, "report.html");
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, [M1, "run", path, "--out", out, "--html", html, ...flags], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 90_000 },
        (err, _stdout, stderr) => resolve({ code: err ? (err as { code: number }).code : 0, stderr })),
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cell 2 \\(id cell-1\\): .*\\n\\s+${expected.source}`));
    const nb = read(out);
    assert.deepEqual(nb.cells[0].outputs, [{ output_type: "stream", name: "stdout", text: "before\n" }]);
    assert.deepEqual(nb.cells.at(-1)!.outputs, []);
    assert.match(readFileSync(html, "utf8"), /The run stopped at cell 2/);
    return nb;
  } finally {
    cleanup();
  }
}

test("a cell that ends the kernel (process.exit) fails the run naming it; every earlier output is written", { timeout: 60_000 }, async () => {
  const nb = await runDying(["process.exit(3);"], /the kernel died while this cell ran: the kernel process exited with code 3/);
  assert.equal(nb.cells[1].outputs![0].ename, "KernelDied");
});

test("a kernel killed by a V8 out-of-memory fails the run naming the cell", { timeout: 90_000 }, async () => {
  await runDying(["const hog: number[][] = [];\nfor (;;) hog.push(new Array(1e6).fill(hog.length));"],
    /the kernel died while this cell ran: the kernel process was killed by SIGABRT/, [], { NODE_OPTIONS: "--max-old-space-size=300" });
});

test("synchronous code past --timeout cannot be interrupted: the kernel is killed and the run fails naming the cell", { timeout: 60_000 }, async () => {
  const nb = await runDying(["while (true) {}"], /the cell ran longer than --timeout 1 s and was interrupted \(the kernel did not stop, so it was killed\)/, ["--timeout", "1"]);
  assert.equal(nb.cells[1].outputs![0].ename, "CellTimeoutError");
});

test("a promise a cell leaves rejected fails that cell with the rejection", { timeout: 60_000 }, async () => {
  const nb = await runDying(["Promise.reject(new Error('x'));\n'after';"], /UnhandledPromiseRejection: a promise was rejected and nothing handled it: Error: x/);
  assert.equal(nb.cells[1].outputs![0].ename, "UnhandledPromiseRejection");
});

test("malformed notebooks, other kernels and bad arguments give clear errors", { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-run-");
  try {
    const bad = join(dir, "bad.ipynb");
    writeFileSync(bad, '{"nbformat": 4, "cells": [');
    let r = await m1(["run", bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /notebook .*bad\.ipynb is not valid JSON/);

    writeFileSync(bad, JSON.stringify({ nbformat: 3, cells: [] }));
    assert.match((await m1(["run", bad])).stderr, /nbformat 3 is not supported/);

    writeFileSync(bad, JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [{ cell_type: "code", source: 5, metadata: {} }] }));
    assert.match((await m1(["run", bad])).stderr, /cell 1: "source" must be a string or a list of strings/);

    const python = notebook(dir, "python.ipynb", ["print(1)"], { kernelspec: { name: "python3", language: "python" } });
    r = await m1(["run", python]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is for kernel "python3" \(python\); m1 run runs TypeScript notebooks on the m1 kernel/);

    assert.match((await m1(["run", join(dir, "missing.ipynb")])).stderr, /cannot read notebook .*missing\.ipynb/);
    assert.match((await m1(["run", python, "-p", "1x=2"])).stderr, /-p 1x=2: expected name=value/);
    assert.match((await m1(["run", python, "--timeout", "soon"])).stderr, /--timeout: "soon" is not a number/);
    assert.equal((await m1(["run"])).code, 1);
  } finally {
    cleanup();
  }
});

test("a notebook outside the repository imports m1-workbench, m1-workbench/benchmarks and the workbench's libraries (apache-arrow, mathjs, tslab) without an install; plotly.js says it runs in the browser", { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-run-elsewhere-");
  try {
    const path = notebook(dir, "mine.ipynb", [
      'import { tableFromArrays } from "apache-arrow";\nimport * as math from "mathjs";\nimport * as tslab from "tslab";\nimport { Tensor } from "m1-workbench";\nimport { SUITES } from "m1-workbench/benchmarks";',
      'const det: number = math.det([[1, 2], [3, 4]]);\nconsole.log(`det ${det}, tslab.display.html ${typeof tslab.display.html}, ${new Tensor("F32", [1], Float32Array.of(1)).f32[0]}, ${SUITES.includes("arithmetic")}`);',
      'tableFromArrays({ x: Int32Array.of(1, 2) })',
      'const Plotly = await import("plotly.js-dist-min");',
    ]);
    const out = join(dir, "out.ipynb");
    const r = await m1(["run", path, "--out", out]);
    assert.equal(r.code, 1, "the last cell imports plotly.js, which runs only in a browser");
    assert.match(r.stderr, /cell 4 .*\n.*plotly\.js runs in the browser, not in the kernel: make a figure with `new Figure/);
    const cells = read(out).cells;
    assert.deepEqual(cells[1].outputs, [{ output_type: "stream", name: "stdout", text: "det -2, tslab.display.html function, 1, true\n" }]);
    const table = cells[2].outputs![0] as unknown as { data: Record<string, unknown> };
    assert.ok(table.data["application/vnd.dataresource+json"], "an Arrow table made in the cell shows as a table (the engine's own apache-arrow)");
  } finally {
    cleanup();
  }
});
