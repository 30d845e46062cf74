// The paper's efficiency claim from the published configs (FLOPs ratios at 64K/100K printed and checked against
// the paper's statements, docs/architecture.md §8's per-token numbers, Figure 1's readings, memory at 64K/1M), the paper's
// tables as Arrow data, and the measured small-scale curve of our engine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { Model } from "../engine/model.ts";
import { DISPLAY, PLOTLY_MIME, DATARESOURCE_MIME } from "../engine/display.ts";
import { EfficiencyReport } from "../benchmarks/efficiency/report.ts";
import { measureContextScaling } from "../benchmarks/efficiency/measured.ts";
import { table1, table2 } from "../benchmarks/paper/tables.ts";
import { tableRows } from "../benchmarks/arrow.ts";

const report = new EfficiencyReport();

test("FLOPs ratios M1 / DeepSeek-R1 at 64K and 100K generated tokens, against the paper's statements", () => {
  const [at64k, at100k] = report.claims();
  for (const c of [at64k, at100k]) {
    console.log(`G = ${c.generatedTokens}: M1/R1 cumulative ${c.cumulativeRatio.toFixed(3)}, per token ${c.perTokenRatio.toFixed(3)} — paper: "${c.text}"`);
  }
  // "less than 50% of the FLOPs at a generation length of 64K tokens": holds for both ways of counting
  assert.equal(at64k.generatedTokens, 65536);
  assert.ok(at64k.cumulativeRatio < 0.5 && at64k.holdsCumulative);
  assert.ok(at64k.perTokenRatio < 0.5 && at64k.holdsPerToken);
  // "approximately 25% ... at 100K tokens": the per-token cost at 100K is ≈ 25%; the whole generation is ≈ 34%
  assert.ok(Math.abs(at100k.perTokenRatio - 0.25) <= 0.05 && at100k.holdsPerToken);
  assert.ok(at100k.cumulativeRatio > 0.3 && at100k.cumulativeRatio < 0.4 && !at100k.holdsCumulative);
});

test("per-token FLOPs and memory reproduce docs/architecture.md §8 from the released M1 config", () => {
  const m1 = report.model("MiniMax-M1");
  assert.equal(m1.tokenFlops(1) - m1.tokenFlops(0), 327_680, "10 softmax layers × 4·64·128 per attended position");
  assert.ok(Math.abs(m1.tokenFlops(0) / 1e9 - 94.71) < 0.01, `F(0) = ${m1.tokenFlops(0)}`);
  assert.deepEqual(m1.termFlops(0)["LM head"], 2 * 6144 * 200064);
  const mem = m1.memory(2 ** 20);
  assert.equal(mem.cacheBytes, 40 * 2 ** 30, "40 KiB per token: 2^20 tokens → 40 GiB");
  assert.equal(mem.stateBytes, 280 * 2 ** 20, "70 layers × 64 heads × 128² × 4 bytes");
  const r1 = report.model("DeepSeek-R1");
  assert.equal(r1.memory(1).cacheBytes, 61 * 576 * 2);
  assert.equal(r1.tokenFlops(1) - r1.tokenFlops(0), 61 * 2 * 128 * (128 + 64 + 128));
  const q = report.model("Qwen3-235B-A22B");
  assert.equal(q.memory(1).cacheBytes, 94 * 2 * 4 * 128 * 2);
  // closed-form sum = explicit sum
  let sum = 0;
  for (let t = 1; t <= 1000; t++) sum += r1.tokenFlops(t);
  assert.ok(Math.abs(r1.generationFlops(1000) - sum) / sum < 1e-12);
});

test("Figure 1 curve: same ordering as the figure, within 35% of its readings, M1/R1 shrinking with length", () => {
  const rows = tableRows(report.readings()).filter((r) => r.figure_reading !== null);
  assert.equal(rows.length, 8);
  for (const r of rows) assert.ok(Number(r.ours_over_reading) > 0.65 && Number(r.ours_over_reading) < 1.1, `${r.model} at ${r.generated_tokens}: ours/figure ${r.ours_over_reading}`);
  const curve = tableRows(report.curve());
  const last = curve.at(-1)!;
  assert.equal(last.generated_tokens, 131072);
  assert.ok(Number(last["DeepSeek-R1"]) > Number(last["Qwen3-235B-A22B"]) && Number(last["Qwen3-235B-A22B"]) > Number(last["MiniMax-M1"]));
  const ratio = (r: Record<string, unknown>) => Number(r["MiniMax-M1"]) / Number(r["DeepSeek-R1"]);
  assert.ok(ratio(curve[4]) > ratio(curve[16]) && ratio(curve[16]) > ratio(last));
});

test("the report states its formulas and every counting assumption; it displays as a figure", () => {
  const text = report.text();
  for (const needle of ["F(t) =", "dF/dt = 4 * L_soft * h * d", "no weight absorption", "compressed latent", "P = 0", "5·d²", "Counting assumptions"]) assert.ok(text.includes(needle), needle);
  const tex = report.model("MiniMax-M1").formulas().find((f) => f.name === "lightning layers")!.tex;
  assert.match(tex, /L\\_lin/);
  const bundle = report[DISPLAY]();
  assert.ok(PLOTLY_MIME in bundle);
  assert.match(String(bundle["text/html"]), /Counting assumptions/);
});

test("Tables 1 and 2 as Arrow with their source; a new result goes beside the published ones", () => {
  const t2 = table2();
  assert.equal(t2.data.numRows, 17 * 9);
  const cell = (model: string, task: string) => tableRows(t2.data).find((r) => r.model === model && r.task === task)!;
  assert.equal(cell("MiniMax-M1-80k", "AIME 2024").score, 86);
  assert.equal(cell("MiniMax-M1-80k", "AIME 2024").thinking_budget, 80000);
  assert.equal(cell("MiniMax-M1-40k", "HLE (no tools)").footnoted, true);
  assert.equal(cell("OpenAI-o3", "OpenAI-MRCR (1M)").score, null);
  assert.match(t2.source.arxiv ?? "", /2506\.13585/);
  const ours = t2.withResult("mini-80k", { "MATH-500": 12.5 });
  assert.equal(ours.data.numRows, 17 * 9 + 1);
  assert.match(ours.text(), /\| Math \| MATH-500 \| 98\.1 .* \| 96\.8 \| 12\.5 \|/);
  assert.match(ours.text(), /8\.4\*/);
  assert.throws(() => t2.withResult("x", { "AIME 2099": 1 }), /no row "AIME 2099"/);
  const t1 = table1();
  assert.equal(tableRows(t1.data).find((r) => r.model === "MiniMax-M1-80k" && r.quantity === "Maximum output")!.tokens, 80000);
  assert.ok(DATARESOURCE_MIME in t1[DISPLAY]());
});

test("measured on our engine: the softmax layer's K/V grows with the context, the lightning state does not", async () => {
  const model = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
  const steps = 8;
  const scaling = await measureContextScaling(model, { contexts: [64, 1024], steps });
  console.log(scaling.text());
  const cfg = model.config;
  for (const r of scaling.rows) {
    const want = r.type === "lightning" ? cfg.numHeads * cfg.headDim * cfg.headDim * 4 : 2 * (r.context + steps) * cfg.numKvHeads * cfg.headDim * 4;
    assert.equal(r.stateBytes, want, `layer ${r.layer} at ${r.context}`);
    assert.ok(r.microsPerToken > 0 && Number.isFinite(r.microsPerToken));
  }
  assert.equal(scaling.rows.filter((r) => r.type === "softmax").length, 2);
  assert.equal(scaling.table().numRows, 2 * cfg.numLayers);
  assert.ok(PLOTLY_MIME in scaling[DISPLAY]());
  await assert.rejects(measureContextScaling(model, { contexts: [5000] }), /not in \[1, 4064\]/);
});
