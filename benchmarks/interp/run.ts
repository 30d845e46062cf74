// `node --import tsx benchmarks/interp/run.ts [--threads T] [--tries N]`: the interpretability methods' speed on
// mini-80k. (1) A batched forward of 32 prompts × 64 tokens (one packed pass) against the same prompts one forward
// call at a time, in tokens/s, in GFLOP/s against the FMA peak measured in the same run (which bounds what any
// batching can gain), and in CPU time (other jobs on a shared machine disturb it less than wall time). (2) A full
// (layer × position) residual patching sweep (hook_resid_pre) on a 32-token prompt, preparation included, and
// attribution patching's estimate of every hook point at once (one forward and one backward pass). (3) The residual
// sweep over a dataset of 16 pairs of 16 tokens (each pair its own metric) in one call against one prepare and sweep
// per pair. Prints a Markdown table and writes benchmarks/interp/RESULTS.md.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as native from "../../native/index.ts";
import { Model, Rng, ActivationPatching, AttributionPatching, type PromptPair } from "../../engine/index.ts";
import { fmaPeak } from "../perf/machine.ts";
import { forwardFlops } from "../perf/train-flops.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MINI = path.join(HERE, "..", "..", "engine", "checkpoints", "mini-80k");

const { values } = parseArgs({ options: { threads: { type: "string" }, tries: { type: "string" } } });
const threads = Number(values.threads ?? os.availableParallelism());
const tries = Number(values.tries ?? 5);
if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads: "${values.threads}" is not a thread count`);
if (!Number.isInteger(tries) || tries < 1) throw new Error(`--tries: "${values.tries}" is not a count`);
native.setThreads(threads);

const model = await Model.load(MINI);
const rng = new Rng(7);
const digits = (k: number) => Array.from({ length: k }, () => Math.floor(rng.next() * 10)).join(" ");
/** "<s> a + b = <think>" with k digits each: 2k + 4 tokens */
const addition = (k: number) => `<s> ${digits(k)} + ${digits(k)} = <think>`;

/** Best (lowest) wall time of `tries` runs, in seconds. */
async function best(fn: () => Promise<unknown>): Promise<number> {
  return (await bestTimes(fn)).wall;
}

/** Best wall time and best CPU time (user + system, all threads of the process) of `tries` runs, in seconds. */
async function bestTimes(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  let wall = Infinity, cpu = Infinity;
  for (let i = 0; i < tries; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall = Math.min(wall, (performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu = Math.min(cpu, (c.user + c.system) / 1e6);
  }
  return { wall, cpu };
}

const prompts = Array.from({ length: 32 }, () => Array.from(model.promptIds(addition(30))));
if (prompts.some((p) => p.length !== 64)) throw new Error("the batch prompts must be 64 tokens each");
const loadBefore = os.loadavg()[0].toFixed(2);
const peak = fmaPeak(10); // GFLOP/s
const tokens = 32 * 64;
const gflop = forwardFlops(model.config, prompts.map((p) => p.length)) / 1e9;
await model.forwardBatch(prompts); // warm-up: weights read, native objects built
const one = await bestTimes(async () => { for (const p of prompts) await model.forward(p); });
const packed = await bestTimes(() => model.forwardBatch(prompts));

const clean = addition(14);
const ids = Array.from(model.promptIds(clean));
if (ids.length !== 32) throw new Error("the patching prompt must be 32 tokens");
const corrupted = [...ids];
corrupted[14] = ids[14] === ids[13] ? ids[12] : ids[13]; // a's last digit replaced by another digit
const [x, y] = [ids[14], corrupted[14]];
const metric = (logits: Float32Array) => logits[x] - logits[y];
const sweep = await best(async () => (await ActivationPatching.prepare(model, ids, corrupted, metric)).positions("hook_resid_pre"));
const patching = await ActivationPatching.prepare(model, ids, corrupted, metric);
const attribution = await best(() => AttributionPatching.compute(patching));

/** A pair of 2k + 4 tokens: a's last digit replaced by another digit, the metric that digit's logit against it. */
const pairOf = (k: number): PromptPair => {
  const clean = Array.from(model.promptIds(addition(k)));
  const corrupted = [...clean];
  corrupted[k] = clean[k] === clean[k - 1] ? clean[k - 2] : clean[k - 1];
  const [good, bad] = [clean[k], corrupted[k]];
  return { clean, corrupted, metric: (logits: Float32Array) => logits[good] - logits[bad] };
};
const pairs = Array.from({ length: 16 }, () => pairOf(6));
const overPairs = await best(async () => (await ActivationPatching.prepare(model, pairs)).positions("hook_resid_pre"));
const pairByPair = await best(async () => {
  for (const p of pairs) await (await ActivationPatching.prepare(model, p.clean, p.corrupted, p.metric!)).positions("hook_resid_pre");
});

const load = os.loadavg()[0].toFixed(2);
const pass = (t: { wall: number; cpu: number }) =>
  `${(tokens / t.wall).toFixed(0)} tok/s (${(t.wall * 1000).toFixed(0)} ms, ${(gflop / t.wall).toFixed(1)} GFLOP/s = ` +
  `${((100 * gflop) / t.wall / peak).toFixed(0)}% of the FMA peak); ${(t.cpu * 1000).toFixed(0)} ms of CPU time`;
const rows = [
  ["batched forward, 32 prompts × 64 tokens (one packed pass)", pass(packed)],
  ["the same prompts one forward call each", pass(one)],
  ["speed-up of the batch", `${(one.wall / packed.wall).toFixed(2)}x in wall time, ${(one.cpu / packed.cpu).toFixed(2)}x in CPU time (target ≥ 4x)`],
  [`the most any batching could give: one call each against the ${gflop.toFixed(2)} GFLOP of the pass at the FMA peak (${peak.toFixed(0)} GFLOP/s)`,
    `${(one.wall / (gflop / peak)).toFixed(2)}x`],
  [`residual patching sweep, ${model.config.numLayers} layers × 32 positions, preparation included`, `${sweep.toFixed(2)} s (target < 5 s)`],
  ["attribution patching: gradients at every hook point (one forward + backward of the 32 tokens)", `${(attribution * 1000).toFixed(0)} ms`],
  ["residual patching sweep over a dataset of 16 pairs × 16 tokens, one call (preparation included)", `${(overPairs * 1000).toFixed(0)} ms`],
  ["the same sweep, one prepare and sweep per pair", `${(pairByPair * 1000).toFixed(0)} ms (the dataset call: ${(pairByPair / overPairs).toFixed(2)}x faster)`],
];
const table = ["| measurement | result |", "|---|---|", ...rows.map((r) => `| ${r[0]} | ${r[1]} |`)].join("\n");
const cpu = native.cpuInfo();
const report = `# Interpretability methods: speed on mini-80k\n\nCommand: \`node --import tsx benchmarks/interp/run.ts --threads ${threads} --tries ${tries}\`` +
  ` (best of ${tries}; ${threads} threads, ISA ${cpu.isa}, ${os.cpus()[0]?.model ?? "unknown CPU"}, load average ${loadBefore} at the start, ${load} at the end).\n\n${table}\n`;
process.stdout.write(`${table}\n`);
fs.writeFileSync(path.join(HERE, "RESULTS.md"), report);
