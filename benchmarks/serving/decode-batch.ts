// The engine's batched decode without the server: the load generator's completions decoded by `generate` one at a
// time, then by a DecodeBatch (engine/batch.ts) holding B of them at once, in one process, rounds interleaved so
// that the machine's load hits all alike; reports decode tokens per second (best round; prefill not timed) and the
// ratio to `generate`. Stop tokens are off, so every sequence decodes --max-tokens tokens.
//   node --import tsx benchmarks/serving/decode-batch.ts [--model mini-80k] [--batches 1,4,16,64] [--max-tokens 64] [--rounds 3]
import os from "node:os";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { DecodeBatch } from "../../engine/batch.ts";
import { additionPrompt } from "./prompts.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "mini-80k" }, batches: { type: "string", default: "1,4,16,64" },
  "max-tokens": { type: "string", default: "64" }, rounds: { type: "string", default: "3" },
} });
const batches = values.batches!.split(",").map(Number);
const maxNewTokens = Number(values["max-tokens"]), rounds = Number(values.rounds);
const { model } = await loadLocalModel(values.model!);
const options = (i: number) => ({ maxNewTokens, temperature: 1, topP: 0.95, seed: i, stopTokens: [] });

/** Decode tokens per second of `generate` on 4 prompts, one after the other, from each one's first token (chosen
 *  from the prefill's logits) to its last. */
async function alone(): Promise<number> {
  let tokens = 0, seconds = 0;
  for (let i = 0; i < 4; i++) {
    let t0 = 0;
    for await (const t of model.generate(additionPrompt(i), options(i))) {
      if (t.index === 0) t0 = performance.now();
      else tokens++;
    }
    seconds += (performance.now() - t0) / 1000;
  }
  return tokens / seconds;
}

/** Decode tokens per second of a batch of B sequences, from their first tokens to their last. */
async function batched(B: number): Promise<number> {
  const batch = new DecodeBatch(model);
  for (let i = 0; i < B; i++) await batch.join(additionPrompt(i), options(i));
  const t0 = performance.now();
  await batch.step(); // the first tokens, chosen from the prefill's logits (uncounted, as in alone), and a forward
  let tokens = 0;
  while (batch.active.length) {
    tokens += batch.active.length;
    await batch.step();
  }
  return tokens / ((performance.now() - t0) / 1000);
}

const loadBefore = os.loadavg()[0];
await alone(); // warm-up
await batched(batches.at(-1)!);
const best = { alone: 0, batched: batches.map(() => 0) };
for (let r = 0; r < rounds; r++) {
  best.alone = Math.max(best.alone, await alone());
  for (let b = 0; b < batches.length; b++) best.batched[b] = Math.max(best.batched[b], await batched(batches[b]));
}
process.stdout.write([
  `decode of 6-digit additions, ${maxNewTokens} tokens each (best of ${rounds} interleaved rounds), \`${values.model}\`, ` +
    `${os.availableParallelism()} CPUs, load average ${loadBefore.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end`,
  "",
  "| sequences | tokens/s | × generate one at a time |",
  "|---|---|---|",
  `| generate, one at a time | ${best.alone.toFixed(0)} | 1.00 |`,
  ...batches.map((B, b) => `| DecodeBatch of ${B} | ${best.batched[b].toFixed(0)} | ${(best.batched[b] / best.alone).toFixed(2)} |`),
].join("\n") + "\n");
