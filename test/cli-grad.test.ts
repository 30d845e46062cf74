// `m1 grad` as a child process against the golden gradient files (test/fixtures/golden/README.md, Gradients): the
// loss and token log-probabilities within 1e-5 relative, every gradient tensor (norm above 1e-6 of the largest) and
// the residual-stream gradients grad.hidden.i within 1e-4 relative.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { SafetensorsFile } from "../engine/safetensors.ts";
import { ROOT, TINY, TINY_ROPE8, relErr, tempDir } from "./helpers.ts";

function m1(...args: string[]) {
  return spawnSync(process.execPath, [path.join(ROOT, "kernel", "bin", "m1.mjs"), ...args], { encoding: "utf8", cwd: ROOT });
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

for (const dir of [TINY, TINY_ROPE8]) {
  test(`m1 grad ${path.basename(dir)} --hidden writes the golden file's tensors`, (t) => {
    const { dir: tmp, cleanup } = tempDir();
    t.after(cleanup);
    const golden = SafetensorsFile.open(path.join(dir, "grad.safetensors"));
    t.after(() => golden.close());
    const f = (key: string) => golden.read(key).toFloat32();
    const out = path.join(tmp, "grad.safetensors");
    const r = m1("grad", dir, "--ids", Array.from(golden.read("input_ids").i32).join(","),
      "--token-weights", Array.from(f("token_weights")).join(","), "--hidden", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    const ours = SafetensorsFile.open(out);
    t.after(() => ours.close());
    const expected = golden.names().filter((k) => k !== "logits").sort();
    assert.deepEqual(ours.names().sort(), expected);
    const g = (key: string) => ours.read(key).toFloat32();
    assert.ok(relErr(g("loss"), f("loss")) <= 1e-5, "loss");
    assert.ok(relErr(g("token_logprobs"), f("token_logprobs")) <= 1e-5, "token_logprobs");
    const grads = expected.filter((k) => k.startsWith("grad."));
    const largest = Math.max(...grads.filter((k) => !k.startsWith("grad.hidden.")).map((k) => norm(f(k))));
    for (const key of grads) {
      assert.deepEqual(ours.info(key).shape, golden.info(key).shape, key);
      if (!key.startsWith("grad.hidden.") && norm(f(key)) <= 1e-6 * largest) continue;
      const e = relErr(g(key), f(key));
      assert.ok(e <= 1e-4, `${key}: ${e}`);
    }
  });
}

test("m1 grad refuses bad input with a message and writes nothing", (t) => {
  const { dir: tmp, cleanup } = tempDir();
  t.after(cleanup);
  const out = path.join(tmp, "g.safetensors");
  const short = m1("grad", TINY, "--ids", "1,5,9,3", "--token-weights", "1,2", "--out", out);
  assert.equal(short.status, 1);
  assert.match(short.stderr, /m1 grad: lossAndGradients: tokenWeights has 2 entries, expected n − 1 = 3/);
  const label = m1("grad", TINY, "--ids", "1,5,100000", "--out", out);
  assert.equal(label.status, 1);
  assert.match(label.stderr, /token id 100000 at index 2 is outside the vocabulary/);
  const nan = m1("grad", TINY, "--ids", "1,5", "--token-weights", "x", "--out", out);
  const inf = m1("grad", TINY, "--ids", "1,5", "--token-weights", "Infinity", "--out", out);
  assert.match(inf.stderr, /--token-weights: item 0 \("Infinity"\) of "Infinity" is not a number/);
  assert.match(nan.stderr, /--token-weights: item 0 \("x"\) of "x" is not a number/);
  const noOut = m1("grad", TINY, "--ids", "1,5");
  assert.match(noOut.stderr, /--out is required/);
  assert.deepEqual(fs.readdirSync(tmp), []);
});
