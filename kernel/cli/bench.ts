// `m1 bench <checkpoint-dir> [--prefill N] [--decode STEPS] [--context C] [--threads T] [--json]`: prefill and
// decode throughput of the engine on a checkpoint (e.g. the one `m1 make-checkpoint bench-small DIR` writes).
import { parseArgs } from "node:util";
import { InputError } from "../../engine/errors.ts";
import { Model } from "../../engine/model.ts";
import * as native from "../../native/index.ts";
import { prefill, decode, contextCache, warmUp } from "../../benchmarks/perf/engine.ts";

export const BENCH_USAGE = "m1 bench <checkpoint-dir> [--prefill N (default 2048)] [--decode STEPS (default 32)] " +
  "[--context C (decode after C prompt tokens, default: after the prefill)] [--threads T] [--tries N (best of N runs of each)] [--json]";

function count(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const x = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(x) || x < min) throw new InputError(`--${name}: "${text}" is not an integer >= ${min}`);
  return x;
}

/** Runs the command; what it prints goes to `print` (standard output by default). */
export async function bench(args: string[], print: (text: string) => void = (text) => process.stdout.write(text)): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      prefill: { type: "string" },
      decode: { type: "string" },
      context: { type: "string" },
      threads: { type: "string" },
      tries: { type: "string" },
      json: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) throw new InputError(`expected one checkpoint directory, got ${positionals.length ? positionals.join(" ") : "none"}\nusage: ${BENCH_USAGE}`);
  const n = count("prefill", values.prefill, 2048, 1);
  const steps = count("decode", values.decode, 32, 0);
  if (values.threads !== undefined) native.setThreads(count("threads", values.threads, 1, 1));
  const model = await Model.load(positionals[0]);
  await warmUp(model);
  const tries = count("tries", values.tries, 1, 1);
  const p = await prefill(model, n, tries);
  const result: Record<string, number | string> = { prefill_tokens: n, prefill_tok_s: p.tokS };
  if (steps > 0) {
    const context = count("context", values.context, n, 0);
    const cache = context === n ? p.cache : await contextCache(model, context);
    const d = await decode(model, context, steps, cache, tries);
    Object.assign(result, { decode_context: context, decode_steps: steps, decode_tok_s: d.tokS });
  }
  const info = native.cpuInfo();
  Object.assign(result, { threads: info.threads, isa: info.isa });
  if (values.json) {
    print(JSON.stringify(result) + "\n");
  } else {
    print(`prefill ${n} tokens: ${p.tokS.toFixed(1)} tokens/s (${info.isa}, ${info.threads} threads)\n`);
    if (steps > 0) print(`decode ${steps} tokens after ${result.decode_context}: ${(result.decode_tok_s as number).toFixed(1)} tokens/s\n`);
  }
  return 0;
}
