/** The HTML report of `m1 run` is self-contained and draws its figures offline, in headless Chromium. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { FIXTURES, ROOT, tempDir } from "./helpers.ts";
import { CHROMIUM } from "./kernel-harness.ts";

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

test("the report made by m1 run shows the plot drawn offline", { timeout: 90_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-report-");
  try {
    const html = join(dir, "report.html");
    await promisify(execFile)(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "run", join(FIXTURES, "notebooks", "figure.ipynb"), "--html", html], { cwd: ROOT });
    const text = readFileSync(html, "utf8");
    assert.equal(text.match(/plotly\.js v\d/g)?.length, 1, "plotly.js is inlined once");
    assert.doesNotMatch(text, /<script[^>]+src=/, "no external scripts");

    const context = await chromium.launchPersistentContext(mkdtempSync(join(dir, "chromium-")), { executablePath: CHROMIUM, headless: true, args: ARGS });
    try {
      const page = await context.newPage();
      const requests: string[] = [];
      page.on("request", (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(html).href);
      await page.waitForSelector(".plot svg.main-svg", { timeout: 30_000 });
      const drawn = {
        points: await page.locator(".plot .scatterlayer .point").count(),
        line: (await page.locator(".plot .scatterlayer path.js-line").getAttribute("d"))?.length ?? 0,
        title: await page.locator(".plot .gtitle").textContent(),
      };
      assert.equal(drawn.points, 5);
      assert.ok(drawn.line > 10, "the line has a path");
      assert.equal(drawn.title, "squares");
      assert.deepEqual(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:")), [], "nothing loaded from the network");
    } finally {
      await context.close();
    }
  } finally {
    cleanup();
  }
});
