/**
 * The README's screenshots, made by our own tooling: run notebooks headless with `m1 run` (HTML reports), open the
 * reports in headless Chromium (playwright-core, /usr/bin/chromium unless $CHROMIUM says otherwise), wait until
 * every figure is drawn, and save chosen cells as small PNGs in docs/.
 *
 *   node --import tsx notebooks/screenshots.ts                 # every shot (runs the notebooks they need)
 *   node --import tsx notebooks/screenshots.ts --reports DIR   # reuse DIR/<notebook>.html where present
 *   node --import tsx notebooks/screenshots.ts --only quickstart-card,swap-diff --out docs
 *
 * A shot names a notebook and a text its code cell contains (matched against the cell's source as shown in the
 * report); it captures that cell's outputs (and its source with `source: true`), cut at `maxHeight` pixels.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { chromium, type Page } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface Shot {
  /** docs/<name>.png */
  name: string;
  notebook: string;
  /** text that identifies the code cell (part of its source) */
  cell: string;
  /** include the cell's source above its outputs (default false: outputs only) */
  source?: boolean;
  /** which output of the cell (default: all of them) */
  output?: number;
  maxHeight?: number;
}

export const SHOTS: Shot[] = [
  { name: "quickstart-card", notebook: "01-quickstart", cell: "const m = await wb.load(checkpoint);", maxHeight: 420 },
  { name: "quickstart-generate", notebook: "01-quickstart", cell: "const solved = await solve(a, b, thinkingBudget);", source: true, maxHeight: 400 },
  { name: "lightning-block-form", notebook: "02-lightning-attention", cell: "const block = blockForm(Q, K, V, blockSize);", maxHeight: 300 },
  { name: "lightning-cost", notebook: "02-lightning-attention", cell: "const lengths = [", output: 3, maxHeight: 460 },
  { name: "residual-patching", notebook: "03-hybrid-stack", cell: "const flip: number[][] = [];", output: 0, maxHeight: 500 },
  { name: "swap-diff", notebook: "05-swapping-40k-80k", cell: "const divergence = t40.diff(t80);", output: 0, maxHeight: 480 },
  { name: "paper-flops", notebook: "07-paper-tables", cell: "const report = new EfficiencyReport();", output: 0, maxHeight: 600 },
  { name: "carry-heads", notebook: "09-interpretability-methods", cell: "const heads = await ap.heads();", maxHeight: 520 },
  { name: "carry-dla", notebook: "09-interpretability-methods", cell: "const dla = cleanTrace.logitAttribution(", output: 1, maxHeight: 520 },
];

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Runs the notebook headless into `dir`/<name>.html unless a report is already there. */
function report(notebook: string, dir: string, log: (line: string) => void): string {
  const html = join(dir, `${notebook}.html`);
  if (existsSync(html)) return html;
  log(`running notebooks/${notebook}.ipynb`);
  try {
    execFileSync(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "run", join(ROOT, "notebooks", `${notebook}.ipynb`), "--html", html], { cwd: ROOT, stdio: "pipe" });
  } catch (e) {
    throw new Error(`m1 run notebooks/${notebook}.ipynb failed:\n${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  }
  return html;
}

/** Waits until every plotly figure of the page has drawn. */
async function figuresDrawn(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const doc = (globalThis as any).document;
    const plots = [...doc.querySelectorAll("div.plot, div.m1-plotly")];
    return plots.every((p: any) => p.querySelector(".main-svg"));
  }, undefined, { timeout: 60_000 });
}

async function capture(page: Page, shot: Shot, file: string): Promise<void> {
  const cells = page.locator(".cell.code").filter({ has: page.locator("pre.source", { hasText: shot.cell }) });
  const count = await cells.count();
  if (count !== 1) throw new Error(`shot "${shot.name}": ${count} code cells of ${shot.notebook} contain ${JSON.stringify(shot.cell)} (expected exactly 1)`);
  const cell = cells.first();
  await cell.evaluate((el: any, s: { source: boolean; output: number | null }) => {
    el.querySelector(".prompt")?.style.setProperty("display", "none");
    if (!s.source) el.querySelector("pre.source")?.style.setProperty("display", "none");
    if (s.output !== null) {
      const outputs = [...el.querySelectorAll(":scope > .output")];
      if (!outputs[s.output]) throw new Error(`the cell has ${outputs.length} outputs, no output ${s.output}`);
      outputs.forEach((c: any, i: number) => { if (i !== s.output) c.style.setProperty("display", "none"); });
    }
  }, { source: shot.source ?? false, output: shot.output ?? null });
  await cell.scrollIntoViewIfNeeded();
  const box = await cell.boundingBox();
  if (!box) throw new Error(`shot "${shot.name}": the cell is not visible`);
  const scroll = await page.evaluate(() => ({ x: (globalThis as any).scrollX as number, y: (globalThis as any).scrollY as number }));
  const pad = 8;
  const clip = { x: Math.max(0, box.x + scroll.x - pad), y: Math.max(0, box.y + scroll.y - pad), width: box.width + 2 * pad, height: Math.min(box.height, shot.maxHeight ?? 600) + 2 * pad };
  await page.screenshot({ path: file, clip, fullPage: true });
}

export async function takeScreenshots(options: { shots?: Shot[]; out?: string; reports?: string; log?: (line: string) => void } = {}): Promise<string[]> {
  const shots = options.shots ?? SHOTS;
  const out = resolve(options.out ?? join(ROOT, "docs"));
  const log = options.log ?? ((line: string) => process.stderr.write(`screenshots: ${line}\n`));
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "m1-screenshots-"));
  const reports = options.reports ? resolve(options.reports) : join(work, "reports");
  mkdirSync(reports, { recursive: true });
  const written: string[] = [];
  const context = await chromium.launchPersistentContext(join(work, "profile"), {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 980, height: 900 },
    deviceScaleFactor: 1,
  });
  try {
    for (const notebook of [...new Set(shots.map((s) => s.notebook))]) {
      const html = report(notebook, reports, log);
      const page = await context.newPage();
      await page.goto(pathToFileURL(html).href);
      await figuresDrawn(page);
      for (const shot of shots.filter((s) => s.notebook === notebook)) {
        const file = join(out, `${shot.name}.png`);
        await capture(page, shot, file);
        log(`${file} (${(statSync(file).size / 1024).toFixed(0)} KiB)`);
        written.push(file);
        await page.reload();
        await figuresDrawn(page);
      }
      await page.close();
    }
  } finally {
    await context.close();
    rmSync(work, { recursive: true, force: true });
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: "string" }, reports: { type: "string" }, only: { type: "string" } } });
  const only = values.only?.split(",").map((s) => s.trim());
  const shots = only ? SHOTS.filter((s) => only.includes(s.name)) : SHOTS;
  if (only && shots.length !== only.length) {
    console.error(`screenshots: unknown shot(s) ${only.filter((n) => !SHOTS.some((s) => s.name === n)).join(", ")} (have ${SHOTS.map((s) => s.name).join(", ")})`);
    process.exit(2);
  }
  const files = await takeScreenshots({ shots, out: values.out, reports: values.reports });
  console.log(files.map((f) => `${basename(dirname(f))}/${basename(f)}`).join("\n"));
}
