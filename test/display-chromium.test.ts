/**
 * The offline HTML fallback of figures, as a page that shows notebook outputs in order (classic Notebook,
 * nbconvert, VS Code's output webview) would run it: plotly.js comes once, with the first figure of the kernel
 * session, and every figure draws, whichever of them runs first.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { FIXTURES, tempDir } from "./helpers.ts";
import { CHROMIUM } from "./kernel-harness.ts";
import { localKernel } from "../kernel/jupyter/transport.ts";

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

test("figures' text/html outputs draw offline with plotly.js sent once per session", { timeout: 90_000 }, async () => {
  const kernel = await localKernel(join(FIXTURES, "notebooks"));
  const html: string[] = [];
  try {
    for (const y of ["[1, 4, 9]", "[3, 2, 1]"]) {
      const code = `import { Figure } from "../../../engine/figure.ts";\nnew Figure([{ type: "scatter", mode: "markers", y: ${y} }])`;
      const reply = await kernel.execute(code, (type, content) => {
        if (type === "execute_result") html.push(content.data["text/html"]);
      });
      assert.equal(reply.status, "ok", JSON.stringify(reply));
    }
  } finally {
    await kernel.shutdown();
  }
  assert.equal(html.length, 2);
  assert.match(html[0], /plotly\.js v\d/, "the first figure brings the library");
  assert.doesNotMatch(html[1], /plotly\.js v\d/, "later figures do not");

  const { dir, cleanup } = tempDir("m1-fallback-");
  const context = await chromium.launchPersistentContext(mkdtempSync(join(dir, "chromium-")), { executablePath: CHROMIUM, headless: true, args: ARGS });
  try {
    for (const [name, outputs] of [["in-order", html], ["later-figure-first", [html[1], html[0]]]] as const) {
      const page = join(dir, `${name}.html`);
      writeFileSync(page, `<!DOCTYPE html><html><body>${outputs.map((o) => `<div class="output">${o}</div>`).join("\n")}</body></html>`);
      const tab = await context.newPage();
      await tab.goto(pathToFileURL(page).href);
      await tab.waitForFunction(() => (globalThis as any).document.querySelectorAll(".scatterlayer .point").length === 6, undefined, { timeout: 30_000 });
      assert.equal(await tab.locator("svg.main-svg").count() >= 2, true, name);
      await tab.close();
    }
  } finally {
    await context.close();
    cleanup();
  }
});
