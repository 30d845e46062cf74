/** Shared test utilities: fixture paths, relative error, temp dirs. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { relativeDifference } from "../engine/analysis/diff.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const FIXTURES = join(ROOT, "test", "fixtures");
export const GOLDEN = join(FIXTURES, "golden");
export const TINY = join(GOLDEN, "tiny-m1");
export const TINY_ROPE8 = join(GOLDEN, "tiny-m1-rope8");
export const M1_FIXTURE = join(FIXTURES, "minimax-m1");

/** ||a - b|| / ||b|| in double precision (b is the reference). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  return relativeDifference(b, a);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "m1-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
