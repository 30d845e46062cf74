// `m1 make-checkpoint <name> <out-dir> [--seed N] [--dtype f32|bf16]`: writes a seeded random benchmark checkpoint (hub format).
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { BENCH_SHAPES, writeBenchCheckpoint, type BenchDType } from "../../benchmarks/perf/checkpoint.ts";

export const MAKE_CHECKPOINT_USAGE = `m1 make-checkpoint <${Object.keys(BENCH_SHAPES).join("|")}> <out-dir> [--seed N (default 0)] [--dtype f32|bf16 (default f32)]`;

export async function makeCheckpoint(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { seed: { type: "uint" }, dtype: { type: "string" } });
  const dtype = (values.dtype ?? "f32").toUpperCase() as BenchDType;
  if (dtype !== "F32" && dtype !== "BF16") throw new InputError(`--dtype takes f32 or bf16, got "${values.dtype}"\nusage: ${MAKE_CHECKPOINT_USAGE}`);
  if (positionals.length !== 2) throw new InputError(`expected a checkpoint name and an output directory\nusage: ${MAKE_CHECKPOINT_USAGE}`);
  const seed = values.seed ?? 0;
  const [name, dir] = positionals;
  const { params, bytes } = writeBenchCheckpoint(name, dir, seed, dtype);
  process.stderr.write(`wrote ${name} (${(params / 1e6).toFixed(1)}M parameters, ${(bytes / 2 ** 20).toFixed(0)} MiB ${dtype.toLowerCase()}) to ${dir}\n`);
  return 0;
}
