// `m1 driver-manifest <checkpoint-dir> [--out FILE]`: describes a checkpoint for the native driver
// (native/driver/m1-driver, the C++ core without Node.js): each layer's constants and where each weight lies.
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { InputError } from "../../engine/errors.ts";
import { Checkpoint } from "../../engine/checkpoint.ts";
import { driverManifest } from "../../engine/manifest.ts";

export const DRIVER_MANIFEST_USAGE = "m1 driver-manifest <checkpoint-dir> [--out FILE (default: standard output)]";

export async function driverManifestCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { out: { type: "string" } } });
  if (positionals.length !== 1) throw new InputError(`expected one checkpoint directory\nusage: ${DRIVER_MANIFEST_USAGE}`);
  const ckpt = Checkpoint.open(positionals[0]);
  try {
    // file paths are relative to the manifest's folder (the working directory for standard output)
    const out = values.out === undefined ? null : path.resolve(values.out);
    const text = JSON.stringify(driverManifest(ckpt, out ? path.dirname(out) : process.cwd())) + "\n";
    if (out) fs.writeFileSync(out, text);
    else process.stdout.write(text);
  } finally {
    ckpt.close();
  }
  return 0;
}
