// The sampler's pick alone: Sampler.pickRows over the rows of a decode step (one sampler each, temperature 1, top-p
// 0.95, as load.ts samples), logits uniform in ±3 ("flat": the nucleus holds most of the vocabulary, as for a
// random model) or falling off by id ("peaked"); prints the wall time of a step's picks and the CPU time per row
// (all threads: the rows are shared out to them).
//   node --import tsx benchmarks/serving/pick.ts [--vocab 16384] [--rows 16] [--steps 200]
import { parseArgs } from "node:util";
import { Rng, Sampler } from "../../engine/sampling.ts";

const { values } = parseArgs({ options: { vocab: { type: "string", default: "16384" }, rows: { type: "string", default: "16" }, steps: { type: "string", default: "200" } } });
const [vocab, rows, steps] = [values.vocab, values.rows, values.steps].map(Number);
for (const [flag, n] of [["--vocab", vocab], ["--rows", rows], ["--steps", steps]] as const) {
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${flag} must be an integer >= 1, got ${n}`);
}
const rng = new Rng(1);
const logits = (peaked: boolean) => Array.from({ length: rows }, () => Float32Array.from({ length: vocab }, (_, i) => (rng.next() - 0.5) * 6 - (peaked ? (i % 97) * 0.5 : 0)));
for (const [name, batch] of [["flat", logits(false)], ["peaked", logits(true)]] as const) {
  const samplers = batch.map((_, i) => new Sampler({ temperature: 1, topP: 0.95, seed: i }));
  for (let w = 0; w < 10; w++) Sampler.pickRows(samplers, batch);
  const c0 = process.cpuUsage(), t0 = performance.now();
  for (let k = 0; k < steps; k++) Sampler.pickRows(samplers, batch);
  const wall = (performance.now() - t0) / steps, cpu = process.cpuUsage(c0);
  console.log(`${name}, ${vocab} ids, ${rows} rows: ${(wall * 1000).toFixed(0)} µs per step, ${((cpu.user + cpu.system) / steps / rows).toFixed(0)} µs of CPU per row`);
}
