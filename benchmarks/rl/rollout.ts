/**
 * Rollout speed: new tokens per second of RL rollouts (G completions of each problem in one decode batch, the prompt
 * prefilled once per group; engine/rl/rollout.ts) against the same sequences generated one at a time, with the same
 * options and seeds (so the very same tokens are produced both ways).
 *
 *   node --import tsx benchmarks/rl/rollout.ts [--model mini-80k] [--batch 1,8,32,128] [--group 8] [--max-new 60] [--budget 40] [--tries 3]
 *
 * Each figure is the best of `tries` runs (the machine may be shared), after one warm-up run.
 */
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { additionPrompt, randomOperands } from "../../engine/rl/tasks.ts";
import { Rng } from "../../engine/sampling.ts";
import { rollout } from "../../engine/rl/rollout.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-80k" },
    batch: { type: "string", default: "1,8,32,128" },
    "max-new": { type: "string", default: "60" },
    budget: { type: "string", default: "40" },
    digits: { type: "string", default: "6" },
    group: { type: "string", default: "8" },
    tries: { type: "string", default: "3" },
  },
});
const { model } = await loadLocalModel(values.model!);
const maxNewTokens = Number(values["max-new"]);
const thinkingBudget = Number(values.budget);
const rng = new Rng(1);
const options = { temperature: 1, maxNewTokens, thinkingBudget };

const G = Number(values.group);
console.log(`| sequences | batched tok/s | one at a time tok/s | speed-up | tokens |`);
console.log(`|---|---|---|---|---|`);
for (const b of values.batch!.split(",").map(Number)) {
  const groups = Math.max(1, Math.round(b / G));
  const size = Math.min(b, G);
  const prompts = Array.from({ length: groups }, () => additionPrompt(...randomOperands(rng, Number(values.digits))));
  const tries = Number(values.tries);
  const best = async (run: () => Promise<unknown>) => {
    let seconds = Infinity;
    for (let k = 0; k < tries; k++) {
      const t0 = performance.now();
      await run();
      seconds = Math.min(seconds, (performance.now() - t0) / 1000);
    }
    return seconds;
  };
  const batched = await rollout(model, prompts, { ...options, groupSize: size, seed: 0 }); // warm-up, and the token count
  const tokens = batched.reduce((s, q) => s + q.completion.length, 0);
  const tBatch = await best(() => rollout(model, prompts, { ...options, groupSize: size, seed: 0 }));
  let single = 0;
  const tSingle = await best(async () => {
    single = 0;
    for (let i = 0; i < batched.length; i++) single += (await model.generate(prompts[Math.floor(i / size)], { ...options, seed: i }).result()).ids.length;
  });
  if (single !== tokens) throw new Error(`batched and single runs produced ${tokens} and ${single} tokens`);
  console.log(`| ${batched.length} | ${(tokens / tBatch).toFixed(0)} | ${(tokens / tSingle).toFixed(0)} | ${(tSingle / tBatch).toFixed(2)}x | ${tokens} |`);
}
