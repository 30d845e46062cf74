// `m1 driver-manifest`: describes a model for the native driver (native/driver/m1-driver, the C++ core without
// Node.js): each layer's constants and where each weight lies, or the seed it is drawn from.
import fs from "node:fs";
import path from "node:path";
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { Checkpoint } from "../../engine/checkpoint.ts";
import { loadConfig } from "../../engine/config.ts";
import { driverManifest, randomManifest } from "../../engine/manifest.ts";

export const DRIVER_MANIFEST_USAGE = `m1 driver-manifest <checkpoint-dir> [--out FILE (default: standard output)]
  m1 driver-manifest --random <config.json | checkpoint-dir> --layers 0,7 [--vocab N (default 1024)] [--seed S] [--dtype BF16|F32] [--out FILE]
      (the config's shapes with seeded random weights: e.g. one full-width M1 layer, test/fixtures/minimax-m1)`;

export async function driverManifestCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    out: { type: "string" },
    random: { type: "boolean" },
    layers: { type: "uints" },
    vocab: { type: "uint", min: 1 },
    seed: { type: "uint" },
    dtype: { type: "string" },
  });
  if (positionals.length !== 1) throw new InputError(`expected one ${values.random ? "config" : "checkpoint directory"}\nusage: ${DRIVER_MANIFEST_USAGE}`);
  // file paths are relative to the manifest's folder (the working directory for standard output)
  const out = values.out === undefined ? null : path.resolve(values.out);
  let manifest: Record<string, unknown>;
  if (values.random) {
    if (values.layers === undefined) throw new InputError("--layers is required with --random (e.g. --layers 0 or --layers 0,7)");
    const dtype = values.dtype ?? "BF16";
    if (dtype !== "BF16" && dtype !== "F32") throw new InputError(`--dtype: "${dtype}" must be BF16 or F32`);
    manifest = randomManifest(loadConfig(positionals[0]), values.layers, { vocab: values.vocab ?? 1024, seed: values.seed ?? 0, dtype });
  } else {
    const ckpt = Checkpoint.open(positionals[0]);
    try {
      manifest = driverManifest(ckpt, out ? path.dirname(out) : process.cwd());
    } finally {
      ckpt.close();
    }
  }
  const text = JSON.stringify(manifest) + "\n";
  if (out) fs.writeFileSync(out, text);
  else process.stdout.write(text);
  return 0;
}
