// The expert threshold's saving in time: generates the same completions (6-digit additions for the demo pair, the
// load generator's requests) at each threshold, rounds interleaved so that the machine's load hits all alike, and
// reports tokens per second (best round), the process's CPU time per token (least over the rounds), the expert rows
// the MoE computed per position (native.expertRowsComputed) and the share of expert slots dropped. A threshold runs the model layer by layer with router hooks (as
// `m1 serve` runs such a request), so every threshold, 0 included, takes that path.
//   node --import tsx benchmarks/serving/threshold.ts [--model mini-80k] [--thresholds 0,0.3,0.6] [--prompts 8] [--max-tokens 64] [--rounds 3]
import os from "node:os";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { expertRowsComputed } from "../../native/index.ts";
import { additionPrompt } from "./prompts.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "mini-80k" }, thresholds: { type: "string", default: "0,0.3,0.6" }, prompts: { type: "string", default: "8" },
  "max-tokens": { type: "string", default: "64" }, rounds: { type: "string", default: "3" },
} });
const thresholds = values.thresholds!.split(",").map(Number);
const prompts = Number(values.prompts), maxNewTokens = Number(values["max-tokens"]), rounds = Number(values.rounds);
const { model } = await loadLocalModel(values.model!);

interface Round { seconds: number; cpuSeconds: number; tokens: number; rows: number; positions: number; dropped: number }

async function round(threshold: number): Promise<Round> {
  const r: Round = { seconds: 0, cpuSeconds: 0, tokens: 0, rows: 0, positions: 0, dropped: 0 };
  const rows0 = expertRowsComputed();
  const t0 = performance.now(), c0 = process.cpuUsage();
  for (let i = 0; i < prompts; i++) {
    const gen = model.generate(additionPrompt(i), { maxNewTokens, temperature: 1, topP: 0.95, seed: i, expertThreshold: threshold });
    await gen.result();
    r.tokens += gen.ids.length;
    r.positions += gen.routing!.positions;
    r.dropped += gen.routing!.dropped;
  }
  r.seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  r.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  r.rows = expertRowsComputed() - rows0;
  return r;
}

const loadBefore = os.loadavg()[0];
await round(thresholds[0]); // warm-up
const best = new Map<number, Round>();
const leastCpu = new Map<number, number>();
for (let i = 0; i < rounds; i++) {
  for (const t of thresholds) {
    const r = await round(t);
    const b = best.get(t);
    if (!b || r.tokens / r.seconds > b.tokens / b.seconds) best.set(t, r);
    leastCpu.set(t, Math.min(leastCpu.get(t) ?? Infinity, r.cpuSeconds / r.tokens));
  }
}
const { numLayers, topK } = model.config;
const base = best.get(thresholds[0])!;
process.stdout.write([
  `${prompts} completions of up to ${maxNewTokens} tokens at each threshold (best of ${rounds} interleaved rounds), \`${values.model}\``,
  `${os.availableParallelism()} CPUs, load average ${loadBefore.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end`,
  "",
  "| expert_threshold | tokens/s | × first | CPU µs per token | expert rows per position | slots dropped |",
  "|---|---|---|---|---|---|",
  ...thresholds.map((t) => {
    const r = best.get(t)!;
    const slots = r.positions * numLayers * topK;
    return `| ${t} | ${(r.tokens / r.seconds).toFixed(0)} | ${(r.tokens / r.seconds / (base.tokens / base.seconds)).toFixed(2)} | ${(leastCpu.get(t)! * 1e6).toFixed(0)} | ` +
      `${(r.rows / r.positions).toFixed(2)} of ${numLayers * topK} | ${((100 * r.dropped) / slots).toFixed(1)}% |`;
  }),
].join("\n") + "\n");
