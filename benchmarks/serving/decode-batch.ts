// The engine's batched decode without the server: the load generator's completions decoded by `generate` one at a
// time, then by a DecodeBatch (engine/batch.ts) holding B of them at once, in one process, rounds interleaved so
// that the machine's load hits all alike; reports decode tokens per second (best round; prefill not timed), the
// ratio to `generate`, and the process's CPU time per token (user + system, all threads: what a token costs, which
// the machine's load changes far less than the wall time). Stop tokens are off: every sequence decodes --max-tokens.
//   node --import tsx benchmarks/serving/decode-batch.ts [--model mini-80k (or a checkpoint directory)] [--batches 1,4,16,32,64] [--max-tokens 64] [--rounds 3]
//        [--threads N] (default: the engine's, one per core)
import os from "node:os";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { DecodeBatch } from "../../engine/batch.ts";
import * as native from "../../native/index.ts";
import { benchPrompt, ID_PROMPT_TOKENS } from "./prompts.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "mini-80k" }, batches: { type: "string", default: "1,4,16,32,64" },
  "max-tokens": { type: "string", default: "64" }, rounds: { type: "string", default: "3" }, threads: { type: "string" },
} });
if (values.threads !== undefined) {
  const threads = Number(values.threads);
  if (!(Number.isInteger(threads) && threads >= 1)) throw new Error(`--threads must be an integer >= 1, got ${values.threads}`);
  native.setThreads(threads);
}
const batches = values.batches!.split(",").map(Number);
const maxNewTokens = Number(values["max-tokens"]), rounds = Number(values.rounds);
const { model } = await loadLocalModel(values.model!);
/** a checkpoint without a tokenizer gets its prompts as token ids (./prompts.ts) */
const idVocab = model.tokenizer ? null : model.config.vocabSize;
const prompt = (i: number) => benchPrompt(i, idVocab);
const options = (i: number) => ({ maxNewTokens, temperature: 1, topP: 0.95, seed: i, stopTokens: [] });

interface Rate { perSecond: number; cpuPerToken: number }

/** CPU seconds of the process since `c0` (every thread, user and system). */
function cpuSeconds(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

/** Decode tokens per second of `generate` on 4 prompts, one after the other, from each one's first token (chosen
 *  from the prefill's logits) to its last. */
async function alone(): Promise<Rate> {
  let tokens = 0, seconds = 0, cpu = 0;
  for (let i = 0; i < 4; i++) {
    let t0 = 0, c0 = process.cpuUsage();
    for await (const t of model.generate(prompt(i), options(i))) {
      if (t.index > 0) tokens++;
      else {
        t0 = performance.now();
        c0 = process.cpuUsage();
      }
    }
    seconds += (performance.now() - t0) / 1000;
    cpu += cpuSeconds(c0);
  }
  return { perSecond: tokens / seconds, cpuPerToken: cpu / tokens };
}

/** Decode tokens per second of a batch of B sequences, from their first tokens to their last. The batch records no
 *  log-probabilities, as neither `generate` nor `m1 serve`'s batch does (a pass over the vocabulary per token). */
async function batched(B: number): Promise<Rate> {
  const batch = new DecodeBatch(model, { logprobs: false });
  for (let i = 0; i < B; i++) await batch.join(prompt(i), options(i));
  const t0 = performance.now(), c0 = process.cpuUsage();
  await batch.step(); // the first tokens, chosen from the prefill's logits (uncounted, as in alone), and a forward
  let tokens = 0;
  while (batch.active.length) {
    tokens += batch.active.length;
    await batch.step();
  }
  return { perSecond: tokens / ((performance.now() - t0) / 1000), cpuPerToken: cpuSeconds(c0) / tokens };
}

const loadBefore = os.loadavg()[0];
await alone(); // warm-up
await batched(batches.at(-1)!);
/** The round with the most tokens per second; the least CPU per token over the rounds. */
const better = (a: Rate | null, b: Rate): Rate => (a ? { perSecond: Math.max(a.perSecond, b.perSecond), cpuPerToken: Math.min(a.cpuPerToken, b.cpuPerToken) } : b);
let single: Rate | null = null;
const many: (Rate | null)[] = batches.map(() => null);
for (let r = 0; r < rounds; r++) {
  single = better(single, await alone());
  for (let b = 0; b < batches.length; b++) many[b] = better(many[b], await batched(batches[b]));
}
const row = (what: string, r: Rate) =>
  `| ${what} | ${r.perSecond.toFixed(0)} | ${(r.perSecond / single!.perSecond).toFixed(2)} | ${(r.cpuPerToken * 1e6).toFixed(0)} | ${(single!.cpuPerToken / r.cpuPerToken).toFixed(2)} |`;
process.stdout.write([
  `decode of ${idVocab === null ? "6-digit additions" : `${ID_PROMPT_TOKENS} seeded random token ids`}, ${maxNewTokens} tokens each (best of ${rounds} interleaved rounds), \`${values.model}\`, ` +
    `${os.availableParallelism()} CPUs, ${native.cpuInfo().threads} threads, load average ${loadBefore.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end`,
  "",
  "| sequences | tokens/s | × generate one at a time | CPU µs per token | less CPU per token × |",
  "|---|---|---|---|---|",
  row("generate, one at a time", single!),
  ...batches.map((B, b) => row(`DecodeBatch of ${B}`, many[b]!)),
].join("\n") + "\n");
