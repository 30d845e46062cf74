// `m1 bench <checkpoint-dir> [--prefill N] [--decode STEPS] [--context C] [--threads T] [--json]`: prefill and
// decode throughput of the engine on a checkpoint (e.g. the one `m1 make-checkpoint bench-small DIR` writes).
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { Model } from "../../engine/model.ts";
import * as native from "../../native/index.ts";
import { prefill, decode, contextCache, warmUp } from "../../benchmarks/perf/engine.ts";

export const BENCH_USAGE = "m1 bench <checkpoint-dir> [--prefill N (default 2048)] [--decode STEPS (default 32)] " +
  "[--context C (decode after C prompt tokens, default: after the prefill)] [--threads T] [--tries N (best of N runs of each)] [--json]";

/** Runs the command; what it prints goes to `print` (standard output by default). */
export async function bench(args: string[], print: (text: string) => void = (text) => process.stdout.write(text)): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    prefill: { type: "uint", min: 1 },
    decode: { type: "uint" },
    context: { type: "uint" },
    threads: { type: "uint", min: 1 },
    tries: { type: "uint", min: 1 },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new InputError(`expected one checkpoint directory, got ${positionals.length ? positionals.join(" ") : "none"}\nusage: ${BENCH_USAGE}`);
  const n = values.prefill ?? 2048;
  const steps = values.decode ?? 32;
  if (values.threads !== undefined) native.setThreads(values.threads);
  const model = await Model.load(positionals[0]);
  await warmUp(model);
  const tries = values.tries ?? 1;
  const p = await prefill(model, n, tries);
  const result: Record<string, number | string> = { prefill_tokens: n, prefill_tok_s: p.tokS };
  if (steps > 0) {
    const context = values.context ?? n;
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
