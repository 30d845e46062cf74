/** The interpretability methods over a dataset: each pair's (prompt's) result equals the single-pair (prompt) call. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { DISPLAY, Model, Trace, ActivationPatching, AttributionPatching, LogitAttribution, InputAttribution, logitDifference, type LogitTarget, type PatchingResult, type PromptPair } from "../engine/index.ts";
import { ROOT } from "./helpers.ts";

const MINI = join(ROOT, "engine", "checkpoints", "mini-80k");

/** Three pairs of different lengths, each with its own answer tokens (the first uses the shared metric). */
function dataset(model: Model): { pairs: PromptPair[]; shared: ReturnType<typeof logitDifference> } {
  const shared = logitDifference(model, "7", "2");
  return {
    shared,
    pairs: [
      { clean: "<s> 4 8 7 + 9 3 5 = <think>", corrupted: "<s> 4 8 2 + 9 3 5 = <think>" },
      { clean: "<s> 4 8 + 9 3 = <think> 8 3 0 1 1 , 4 9", corrupted: "<s> 4 8 + 9 1 = <think> 8 1 0 9 0 , 4 9", metric: logitDifference(model, "1", "0") },
      { clean: "<s> 2 6 + 5 = <think>", corrupted: "<s> 2 3 + 5 = <think>", metric: logitDifference(model, "6", "3") },
    ],
  };
}

/** f over items one after the other (runs on one model must not overlap: they share its hooks). */
async function inTurn<T, R>(items: readonly T[], f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const x of items) out.push(await f(x));
  return out;
}

/** Every cell of pair i of `batched` against the single-pair sweep, and the mean against the pairs' values. */
function sameAsSingle(batched: PatchingResult, singles: PatchingResult[]): void {
  const { rows, columns, pairs } = batched.spec;
  assert.equal(pairs.length, singles.length);
  singles.forEach((single, i) => {
    for (const what of ["clean", "corrupted"] as const) {
      assert.ok(Math.abs(pairs[i][what] - single.spec[what]) <= 1e-4 * Math.max(1, Math.abs(single.spec[what])), `pair ${i}: ${what} metric`);
    }
    assert.deepEqual(batched.pair(i).spec.columns, single.spec.columns, `pair ${i}: the columns it has`);
    for (const r of single.spec.rows) {
      for (const c of single.spec.columns) {
        const [got, want] = [batched.at(r, c, i), single.at(r, c)];
        assert.ok(Math.abs(got - want) <= 1e-4 * Math.max(1, Math.abs(want)), `${batched.spec.title}, pair ${i} at (${r}, ${c}): ${got} vs single ${want}`);
      }
    }
  });
  // the mean: over all pairs where every pair has the cell, else the mean corrupted metric plus the mean change
  for (const r of rows) {
    for (const c of columns) {
      const present = singles.flatMap((s, i) => (s.spec.columns.includes(c) ? [i] : []));
      const mean = (f: (i: number) => number) => present.reduce((s, i) => s + f(i), 0) / present.length;
      const want = present.length === singles.length ? mean((i) => singles[i].at(r, c))
        : batched.spec.corrupted + mean((i) => singles[i].at(r, c) - singles[i].spec.corrupted);
      assert.ok(Math.abs(batched.at(r, c) - want) <= 1e-4 * Math.max(1, Math.abs(want)), `mean at (${r}, ${c})`);
    }
  }
  const cells = singles.reduce((s, x) => s + x.spec.rows.length * x.spec.columns.length, 0);
  const table = batched.table();
  assert.equal(table.numRows, cells, "one table row per pair and cell it has");
  assert.match(batched[DISPLAY]()["text/plain"] as string, new RegExp(`mean over ${singles.length} pairs`));
  assert.deepEqual([...new Set(table.getChild("pair")!.toArray())], singles.map((_, i) => i));
}

test("activation patching over a dataset of pairs equals one prepare per pair, sweep by sweep", async () => {
  const model = await Model.load(MINI);
  const { pairs, shared } = dataset(model);
  const batched = await ActivationPatching.prepare(model, pairs, shared);
  const singles = await inTurn(pairs, (p) => ActivationPatching.prepare(model, p.clean, p.corrupted, p.metric ?? shared));
  assert.equal(batched.tokens, Math.max(...singles.map((s) => s.tokens)));
  assert.ok(Math.abs(batched.clean - singles.reduce((s, x) => s + x.clean, 0) / 3) < 1e-4);
  for (const hook of ["hook_resid_pre", "attn.hook_z", "lightning.hook_o"]) {
    sameAsSingle(await batched.positions(hook), await inTurn(singles, (s) => s.positions(hook)));
  }
  sameAsSingle(await batched.heads(), await inTurn(singles, (s) => s.heads()));
  sameAsSingle(await batched.experts(), await inTurn(singles, (s) => s.experts()));
  sameAsSingle(await batched.lightningState(), await inTurn(singles, (s) => s.lightningState()));
});

test("attribution patching over a dataset of pairs equals one backward pass per pair", async () => {
  const model = await Model.load(MINI);
  const { pairs, shared } = dataset(model);
  const batched = await AttributionPatching.compute(await ActivationPatching.prepare(model, pairs, shared));
  const singles = await inTurn(pairs, async (p) => AttributionPatching.compute(await ActivationPatching.prepare(model, p.clean, p.corrupted, p.metric ?? shared)));
  for (const hook of ["hook_resid_pre", "hook_attn_out"]) sameAsSingle(batched.positions(hook), singles.map((s) => s.positions(hook)));
  sameAsSingle(batched.heads(), singles.map((s) => s.heads()));
  sameAsSingle(batched.experts(), singles.map((s) => s.experts()));
});

test("direct logit attribution over traces of a batch equals each prompt's own, and the mean still sums to the mean logit difference", async () => {
  const model = await Model.load(MINI);
  const { pairs } = dataset(model);
  const prompts = pairs.map((p) => p.clean as string);
  const targets: LogitTarget[] = [["7", "2"], ["1", "0"], ["6", "3"]];
  const batched = LogitAttribution.of(await Trace.runBatch(model, "batch", prompts), (i) => targets[i]);
  const singles: LogitAttribution[] = [];
  for (const [i, prompt] of prompts.entries()) singles.push((await Trace.run(model, "one", prompt)).logitAttribution(targets[i]));
  singles.forEach((single, i) => {
    const mine = batched.prompt(i);
    assert.equal(mine.targetLabel, single.targetLabel);
    assert.ok(Math.abs(mine.actual - single.actual) < 1e-4, `prompt ${i}: ${mine.actual} vs ${single.actual}`);
    single.components.forEach((c, k) => assert.ok(Math.abs(mine.components[k].logit - c.logit) < 1e-4, `prompt ${i}, ${c.name}: ${mine.components[k].logit} vs ${c.logit}`));
  });
  const meanActual = singles.reduce((s, x) => s + x.actual, 0) / singles.length;
  assert.ok(Math.abs(batched.actual - meanActual) < 1e-4);
  assert.ok(Math.abs(batched.total - batched.actual) < 1e-5, `the mean terms sum to ${batched.total}, the mean run to ${batched.actual}`);
  batched.components.forEach((c, k) => {
    const mean = singles.reduce((s, x) => s + x.components[k].logit, 0) / singles.length;
    assert.ok(Math.abs(c.logit - mean) < 1e-4, `${c.name}: mean ${c.logit} vs ${mean}`);
  });
  const table = batched.table();
  assert.equal(table.numRows, singles.reduce((s, x) => s + x.components.length, 0));
  assert.deepEqual([...table.getChild("position")!.toArray()].filter((_, r) => r % batched.components.length === 0), singles.map((x) => x.prompts[0].position));
  assert.match(batched.targetLabel, /each prompt's target/);
  assert.match(batched[DISPLAY]()["text/plain"] as string, /Mean over 3 prompts/);
  const short = await Trace.runBatch(model, "b", [prompts[0], prompts[2]]);
  assert.throws(() => LogitAttribution.of(short, "7", 8), /prompt 1: position 8 is outside the 7 positions/);
});

test("input attribution over a dataset equals one call per prompt, in one packed pass or in several", async () => {
  const model = await Model.load(MINI);
  const { pairs } = dataset(model);
  const prompts = pairs.map((p) => p.clean as string);
  const metrics = [["7", "2"], ["1", "0"], ["6", "3"]].map(([a, b]) => logitDifference(model, a, b));
  const singles: InputAttribution[] = [];
  for (const [i, prompt] of prompts.entries()) singles.push(await InputAttribution.compute(model, prompt, metrics[i], { steps: 16 }));
  for (const maxRowsPerPass of [4096, 1]) {
    const batched = await InputAttribution.compute(model, prompts, metrics, { steps: 16, maxRowsPerPass });
    singles.forEach((single, i) => {
      const mine = batched.prompts[i];
      const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(b)), `${maxRowsPerPass} rows a pass, prompt ${i}, ${what}: ${a} vs ${b}`);
      near(mine.value, single.value, "F(x)");
      near(mine.baseline, single.baseline, "F(b)");
      single.integratedGradients.forEach((v, t) => near(mine.integratedGradients[t], v, `IG at ${t}`));
      single.gradientTimesInput.forEach((v, t) => near(mine.gradientTimesInput[t], v, `gradient × input at ${t}`));
    });
    // per position: the mean over the prompts long enough to have it
    batched.labels.forEach((_, t) => {
      const having = singles.filter((x) => t < x.labels.length);
      const mean = having.reduce((s, x) => s + x.integratedGradients[t], 0) / having.length;
      assert.ok(Math.abs(batched.integratedGradients[t] - mean) <= 1e-3 * Math.max(1, Math.abs(mean)), `mean IG at ${t}`);
    });
    assert.equal(batched.table().numRows, singles.reduce((s, x) => s + x.labels.length, 0));
    assert.match(batched[DISPLAY]()["text/plain"] as string, /Mean over 3 prompts/);
    assert.equal(batched.plot().data[0].type, "heatmap", "a dataset shows a prompt × position heatmap");
    assert.equal(Math.abs(batched.completenessError), Math.max(...batched.prompts.map((p) => Math.abs(p.completenessError))));
  }
  await assert.rejects(InputAttribution.compute(model, prompts, metrics.slice(1)), /2 metrics for 3 prompts/);
  await assert.rejects(InputAttribution.compute(model, [prompts[0], []], metrics[0]), /prompt 1: the prompt is empty/);
});

test("a dataset of pairs refuses a pair without a metric, an empty list and a bad pair, naming the pair", async () => {
  const model = await Model.load(MINI);
  const metric = logitDifference(model, "1", "0");
  await assert.rejects(ActivationPatching.prepare(model, []), /no prompt pairs given/);
  await assert.rejects(ActivationPatching.prepare(model, [{ clean: "<s> 1 2", corrupted: "<s> 3 2" }]), /pair 0: no metric/);
  await assert.rejects(ActivationPatching.prepare(model, [{ clean: "<s> 1 2", corrupted: "<s> 3 2" }, { clean: "<s> 1 2", corrupted: "<s> 1" }], metric),
    /pair 1 needs prompts of the same length: the clean prompt has 3 tokens, the corrupted one 2/);
  await assert.rejects(ActivationPatching.prepare(model, ["<s> 1 2"] as unknown as PromptPair[], metric), /pair 0: a pair is \{ clean, corrupted, metric\? \}/);
  const ap = await ActivationPatching.prepare(model, [{ clean: "<s> 1 2", corrupted: "<s> 3 2" }], metric);
  const result = await ap.heads();
  assert.throws(() => result.at(0, 0, 1), /pair 1 is outside the 1 pairs of this sweep/);
});
