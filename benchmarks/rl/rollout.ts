/**
 * Rollout speed: new tokens per second of a decode batch (engine/batch.ts) against the same sequences generated
 * one at a time, on the same prompts, options and seeds (so the very same tokens are produced both ways).
 *
 *   node --import tsx benchmarks/rl/rollout.ts [--model mini-80k] [--batch 1,8,32,128] [--max-new 60] [--budget 40]
 */
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { additionPrompt, randomOperands } from "../../engine/rl/tasks.ts";
import { Rng } from "../../engine/sampling.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-80k" },
    batch: { type: "string", default: "1,8,32,128" },
    "max-new": { type: "string", default: "60" },
    budget: { type: "string", default: "40" },
    digits: { type: "string", default: "6" },
  },
});
const { model } = await loadLocalModel(values.model!);
const maxNewTokens = Number(values["max-new"]);
const thinkingBudget = Number(values.budget);
const rng = new Rng(1);
const options = { temperature: 1, maxNewTokens, thinkingBudget };

console.log(`| sequences | batched tok/s | one at a time tok/s | speed-up | tokens |`);
console.log(`|---|---|---|---|---|`);
for (const b of values.batch!.split(",").map(Number)) {
  const prompts = Array.from({ length: b }, () => additionPrompt(...randomOperands(rng, Number(values.digits))));
  let t0 = performance.now();
  const batched = await model.generateBatch(prompts, { ...options, seed: 0 });
  const tBatch = (performance.now() - t0) / 1000;
  const tokens = batched.reduce((s, q) => s + q.ids.length, 0);
  t0 = performance.now();
  let single = 0;
  for (let i = 0; i < b; i++) single += (await model.generate(prompts[i], { ...options, seed: i }).result()).ids.length;
  const tSingle = (performance.now() - t0) / 1000;
  if (single !== tokens) throw new Error(`batched and single runs produced ${tokens} and ${single} tokens`);
  console.log(`| ${b} | ${(tokens / tBatch).toFixed(0)} | ${(tokens / tSingle).toFixed(0)} | ${(tSingle / tBatch).toFixed(2)}x | ${tokens} |`);
}
