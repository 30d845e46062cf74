/** `m1 train rl|sft` on mini-40k: a short run, its Arrow metrics and checkpoints; a run killed mid-way and resumed
 *  equals one never killed; same seed same run. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { ROOT, tempDir } from "./helpers.ts";

const M1 = join(ROOT, "kernel", "bin", "m1.mjs");
const RL = ["train", "rl", "mini-40k", "--steps", "3", "--batch", "2", "--group", "4", "--rounds", "2", "--stages", "48:7", "--stage-steps", "3",
  "--checkpoint-every", "1", "--seed", "5", "--lr", "1e-3"];

function rows(dir: string): Record<string, unknown>[] {
  const t = tableFromIPC(readFileSync(join(dir, "metrics.arrow")));
  return t.toArray().map((r) => {
    const { rollout_s: _a, logprobs_s: _b, backward_s: _c, optimiser_s: _d, ...rest } = r.toJSON() as Record<string, unknown>;
    return rest;
  });
}

test("m1 train rl: a short CISPO run writes its metrics and checkpoints; killed after step 1 and resumed, it equals an uninterrupted run", { timeout: 600_000 }, async () => {
  const a = tempDir();
  const b = tempDir();
  try {
    const straight = spawnSync(process.execPath, [M1, ...RL, "--out", a.dir], { cwd: ROOT, encoding: "utf8", timeout: 300_000 });
    assert.equal(straight.status, 0, straight.stderr);
    assert.match(straight.stderr, /step 3\/3/);
    for (const f of ["metrics.arrow", "ratios.arrow", "latest.json", "step-000003/model/model.safetensors", "step-000003/trainer.safetensors", "final/model/config.json"]) {
      assert.ok(existsSync(join(a.dir, f)), f);
    }
    const reference = rows(a.dir);
    assert.deepEqual(reference.map((r) => r.step), [1, 2, 3]);
    assert.ok(reference.some((r) => (r.grad_norm as number) > 0), "some step trained");
    // a run killed once its first step is checkpointed
    const child = spawn(process.execPath, [M1, ...RL, "--out", b.dir], { cwd: ROOT });
    await new Promise<void>((resolve) => {
      let err = "";
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
        if (/step 1\/3/.test(err)) child.kill("SIGKILL");
      });
      child.on("exit", () => resolve());
    });
    const again = spawnSync(process.execPath, [M1, ...RL, "--out", b.dir], { cwd: ROOT, encoding: "utf8" });
    assert.notEqual(again.status, 0, "without --resume an existing run is refused");
    assert.match(again.stderr, /holds a run already: add --resume/);
    const resumed = spawnSync(process.execPath, [M1, ...RL, "--out", b.dir, "--resume"], { cwd: ROOT, encoding: "utf8", timeout: 300_000 });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed .* at step [12]/);
    assert.deepEqual(rows(b.dir), reference);
    assert.deepEqual(readFileSync(join(b.dir, "final", "model", "model.safetensors")), readFileSync(join(a.dir, "final", "model", "model.safetensors")));
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test("m1 train: bad options are named", () => {
  const r = spawnSync(process.execPath, [M1, "train", "rl", "mini-40k", "--out", "/tmp/x", "--objective", "ppo"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--objective must be one of cispo, cispo_mask, dapo, grpo, reinforce, got ppo/);
  const s = spawnSync(process.execPath, [M1, "train", "sft", "mini-40k", "--out", "/tmp/x", "--recipe", "nope"], { cwd: ROOT, encoding: "utf8" });
  assert.match(s.stderr, /--recipe must be one of mini-40k, mini-80k, got nope/);
});
