/** The README's screenshot tool: a cell of an `m1 run` report, figures drawn, saved as a small PNG. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { FIXTURES, ROOT, tempDir } from "./helpers.ts";
import { CHROMIUM } from "./kernel-harness.ts";
import { SHOTS, takeScreenshots } from "../notebooks/screenshots.ts";

test("every README shot names a cell of a notebook that exists", () => {
  for (const shot of SHOTS) {
    const path = join(ROOT, "notebooks", `${shot.notebook}.ipynb`);
    assert.ok(existsSync(path), `${shot.name}: ${path}`);
    const cells = (JSON.parse(readFileSync(path, "utf8")).cells as { cell_type: string; source: string[] }[])
      .filter((c) => c.cell_type === "code" && c.source.join("").includes(shot.cell));
    assert.equal(cells.length, 1, `${shot.name}: exactly one code cell of ${shot.notebook} contains ${JSON.stringify(shot.cell)}`);
  }
});

test("a shot of a report's cell is a PNG of that cell with its figure drawn", { timeout: 120_000, skip: !existsSync(CHROMIUM) && "no chromium" }, async () => {
  const { dir, cleanup } = tempDir("m1-shots-");
  try {
    await promisify(execFile)(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "run", join(FIXTURES, "notebooks", "figure.ipynb"), "--html", join(dir, "figure.html")], { cwd: ROOT });
    const files = await takeScreenshots({
      shots: [{ name: "squares", notebook: "figure", cell: "const figure = {", maxHeight: 300 }],
      out: join(dir, "docs"), reports: dir, log: () => {},
    });
    assert.deepEqual(files, [join(dir, "docs", "squares.png")]);
    const png = readFileSync(files[0]);
    assert.equal(png.subarray(1, 4).toString(), "PNG");
    const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
    assert.ok(width > 400 && height > 100 && height <= 300 + 16, `${width}×${height}`);
    assert.ok(png.length > 5_000, "the figure is drawn (not an empty box)");
    await assert.rejects(takeScreenshots({ shots: [{ name: "x", notebook: "figure", cell: "no such cell" }], out: join(dir, "docs"), reports: dir, log: () => {} }), /0 code cells of figure contain "no such cell"/);
  } finally {
    cleanup();
  }
});
