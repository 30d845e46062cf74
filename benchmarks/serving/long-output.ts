// One long generation: tokens per second over each window of the output, so that a cost growing with the length of
// the output shows (the text decoded again in full at every token made generate quadratic; softmax attention over
// the growing context is the model's own share). Stop tokens are off, so it runs to --tokens; --stop adds a stop
// string that never appears (watched at every token).
//   node --import tsx benchmarks/serving/long-output.ts [--model mini-80k] [--tokens 20000] [--window 2000] [--stop zzz]
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "mini-80k" }, tokens: { type: "string", default: "20000" },
  window: { type: "string", default: "2000" }, stop: { type: "string" },
} });
const tokens = Number(values.tokens), window = Number(values.window);
for (const [flag, n] of [["--tokens", tokens], ["--window", window]] as const) {
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${flag} must be an integer >= 1, got ${n}`);
}
const { model } = await loadLocalModel(values.model!);
const prompt = model.tokenizer ? "<s> 1 2 + 3 4 = <think>" : [1, 5, 7];
const stopStrings = values.stop === undefined ? undefined : [values.stop];
const start = performance.now();
let last = start;
for await (const t of model.generate(prompt, { maxNewTokens: tokens, stopTokens: [], temperature: 1, seed: 1, stopStrings })) {
  const n = t.index + 1;
  if (n % window === 0 || n === tokens) {
    const now = performance.now();
    const size = n % window || window;
    console.log(`tokens ${n - size + 1}-${n}: ${(size / ((now - last) / 1000)).toFixed(0)} tokens/s`);
    last = now;
  }
}
console.log(`${tokens} tokens in ${((performance.now() - start) / 1000).toFixed(1)} s${stopStrings ? `, stop string ${JSON.stringify(values.stop)} watched` : ""}`);
