// `m1 make-checkpoint <name> <out-dir> [--seed N]`: writes a seeded random benchmark checkpoint (hub format).
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { BENCH_SHAPES, writeBenchCheckpoint } from "../../benchmarks/perf/checkpoint.ts";

export const MAKE_CHECKPOINT_USAGE = `m1 make-checkpoint <${Object.keys(BENCH_SHAPES).join("|")}> <out-dir> [--seed N (default 0)]`;

export async function makeCheckpoint(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { seed: { type: "uint" } });
  if (positionals.length !== 2) throw new InputError(`expected a checkpoint name and an output directory\nusage: ${MAKE_CHECKPOINT_USAGE}`);
  const seed = values.seed ?? 0;
  const [name, dir] = positionals;
  const { params, bytes } = writeBenchCheckpoint(name, dir, seed);
  process.stderr.write(`wrote ${name} (${(params / 1e6).toFixed(1)}M parameters, ${(bytes / 2 ** 20).toFixed(0)} MiB f32) to ${dir}\n`);
  return 0;
}
