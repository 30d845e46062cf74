// Saving a checkpoint whose weights were changed in memory (training) in the format it was loaded from: every file
// of the source directory is copied (config.json, tokenizer files, the safetensors files and their index, byte for
// byte), then the held tensors' current values are written over their places in the copied safetensors files. Names,
// dtypes, shapes, shard layout and header metadata stay those of the source, so the result loads, swaps, diffs and
// serves like the original. It is written into a temporary sibling directory and renamed into place at the end, so
// a failure leaves nothing half-written.
import fs from "node:fs";
import path from "node:path";
import type { Checkpoint } from "../checkpoint.ts";
import { CheckpointError } from "../errors.ts";

export function saveCheckpoint(checkpoint: Checkpoint, dir: string): void {
  const source = path.resolve(checkpoint.dir);
  const target = path.resolve(dir);
  if (target === source) throw new CheckpointError(`${dir}: cannot save a checkpoint over the directory it was loaded from (${source}); choose a new directory`);
  if (fs.existsSync(target) && !(fs.statSync(target).isDirectory() && fs.readdirSync(target).length === 0)) {
    throw new CheckpointError(`${dir}: already exists and is not an empty directory; choose a new directory`);
  }
  let tmp: string;
  try {
    tmp = fs.mkdtempSync(path.join(path.dirname(target), `.${path.basename(target)}.saving-`));
  } catch (e) {
    throw new CheckpointError(`${dir}: cannot write the checkpoint here (${(e as Error).message})`, { cause: e });
  }
  try {
    for (const entry of fs.readdirSync(source, { withFileTypes: true })) {
      if (entry.isFile()) fs.copyFileSync(path.join(source, entry.name), path.join(tmp, entry.name));
    }
    for (const name of checkpoint.heldNames()) writeOver(checkpoint, name, source, tmp);
    if (fs.existsSync(target)) fs.rmdirSync(target);
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${dir}: cannot write the checkpoint (${(e as Error).message}); nothing was left there`, { cause: e });
  }
}

/** Writes a held tensor's bytes over its place in the copy of the file that holds it. */
function writeOver(checkpoint: Checkpoint, name: string, source: string, copy: string): void {
  const t = checkpoint.get(name);
  const where = checkpoint.location(name, [...t.shape]);
  const relative = path.relative(source, where.file);
  if (relative.startsWith("..") || relative.includes(path.sep)) {
    throw new CheckpointError(`tensor "${name}" lies in ${where.file}, outside the top level of ${source}: cannot save that layout`);
  }
  const fd = fs.openSync(path.join(copy, relative), "r+");
  try {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, bytes.length - done, where.byteOffset + done);
  } finally {
    fs.closeSync(fd);
  }
}
