// The fast paths of the performance work compute what the plain paths compute, and the benchmark tooling works
// (bench-small checkpoint, `m1 bench`, the report). Correctness only: speed lives in benchmarks/perf.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Model } from "../engine/model.ts";
import { lightningAttention, type ForwardPass } from "../engine/layers.ts";
import { slopes } from "../engine/config.ts";
import { writeBenchCheckpoint } from "../benchmarks/perf/checkpoint.ts";
import { writeReport, type Results } from "../benchmarks/perf/report.ts";
import { bench } from "../kernel/cli/bench.ts";
import { makeCheckpoint } from "../kernel/cli/make-checkpoint.ts";
import { SafetensorsFile } from "../engine/safetensors.ts";
import { castTensor } from "../engine/tensor.ts";
import { TINY, tempDir } from "./helpers.ts";

test("a long prompt through a lightning sublayer in chunks equals the unchunked pass (bitwise)", async () => {
  const model = await Model.load(TINY);
  const cfg = model.config;
  const n = 2048 + 300; // two chunks of whole blocks
  const a = Float32Array.from({ length: n * cfg.hiddenSize }, (_, i) => Math.sin(i * 0.37));
  const sl = slopes(cfg, 2);
  const run = async (observe: boolean) => {
    const cache = model.newCache();
    const pass: ForwardPass = { hooks: model.hooks, phase: "prefill", position: 0, tokens: n, sequences: [{ start: 0, tokens: n, position: 0, cache }], nonFinite: null };
    // a hook that only looks at o makes the sublayer take its unchunked, hooked path
    const out = await model.hooks.with(observe ? [["blocks.2.lightning.hook_o", () => undefined]] : [], async () =>
      lightningAttention(cfg, 2, a, pass, model, sl));
    return { out, state: cache.lightning[2] };
  };
  const chunked = await run(false);
  const whole = await run(true);
  assert.deepEqual(chunked.out, whole.out);
  assert.deepEqual(chunked.state, whole.state);
});

test("bench-small: the checkpoint loads, runs, and `m1 bench` reports prefill and decode throughput", async () => {
  const { dir, cleanup } = tempDir("m1-bench-");
  try {
    const { params } = writeBenchCheckpoint("bench-small", dir, 0);
    assert.equal(params, 95_858_688); // 2 × 16384 × 512 + 7 × 9,967,104 + 9,311,232 + 512
    const model = await Model.load(dir);
    const c = model.config;
    assert.deepEqual([c.hiddenSize, c.numLayers, c.numHeads, c.headDim, c.numKvHeads, c.rotaryDim, c.numExperts, c.topK, c.intermediateSize, c.vocabSize],
      [512, 8, 8, 64, 2, 32, 8, 2, 704, 16384]);
    assert.deepEqual(c.layerTypes, [...Array(7).fill("lightning"), "softmax"]);
    const { logits } = await model.forward([5, 6, 7], { logits: "last" });
    assert.ok(logits.data.every((x) => Number.isFinite(x)));

    let printed = "";
    assert.equal(await bench([dir, "--prefill", "40", "--decode", "3", "--threads", "2", "--json"], (text) => (printed += text)), 0);
    const r = JSON.parse(printed);
    assert.ok(r.prefill_tok_s > 0 && r.decode_tok_s > 0, printed);
    assert.equal(r.prefill_tokens, 40);
    assert.equal(r.decode_steps, 3);
    assert.equal(r.threads, 2);
  } finally {
    cleanup();
  }
});

test("m1 make-checkpoint --dtype bf16: the same seeded values rounded to BF16, half the bytes; another dtype is refused", async () => {
  const { dir, cleanup } = tempDir("m1-bench-");
  try {
    const [f32Dir, bf16Dir] = [path.join(dir, "f32"), path.join(dir, "bf16")];
    assert.equal(await makeCheckpoint(["bench-small", bf16Dir, "--seed", "3", "--dtype", "bf16"]), 0);
    const { params, bytes } = writeBenchCheckpoint("bench-small", f32Dir, 3);
    assert.equal(bytes, 4 * params);
    const [f32, bf16] = [f32Dir, bf16Dir].map((d) => SafetensorsFile.open(path.join(d, "model.safetensors")));
    assert.deepEqual(bf16.names(), f32.names());
    for (const name of ["model.embed_tokens.weight", "model.layers.7.block_sparse_moe.experts.5.w2.weight", "model.norm.weight"]) {
      const t = bf16.read(name);
      assert.equal(t.dtype, "BF16", name);
      assert.deepEqual(t.data, castTensor(f32.read(name), "BF16").data, name);
    }
    assert.match(bf16.metadata().generator, /--seed 3 --dtype bf16/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(bf16Dir, "config.json"), "utf8")).torch_dtype, "bfloat16");
    const model = await Model.load(bf16Dir);
    const { logits } = await model.forward([5, 6, 7], { logits: "last" });
    assert.ok(logits.data.every((x) => Number.isFinite(x)));
    await assert.rejects(makeCheckpoint(["bench-small", path.join(dir, "f16"), "--dtype", "f16"]), /--dtype takes f32 or bf16, got "f16"/);
  } finally {
    cleanup();
  }
});

test("the report forms ratios only between figures of one run, with a command for each", () => {
  const { dir, cleanup } = tempDir("m1-report-");
  try {
    const host = { cpu: "test", cores: 2, isa: "avx512", threads: 2, node: "v20", loadavgStart: 0.1, loadavgEnd: 0.2 };
    const run = (date: string, extra: Partial<Results>): Results => ({ date, host, checkpoint: "x", ...extra });
    const md = path.join(dir, "RESULTS.md");
    writeReport(run("A", {
      machine: { fmaPeakGflops: 400, bf16DotPeakGflops: 0, copyGBs: 40, readGBs: 50 },
      gemm: [{ m: 1024, n: 1024, k: 1024, dtype: "F32", gflops: 360, ms: 6 }],
      activeWeightBytes: 100e6,
      prefill: [{ tokens: 2048, seconds: 0.4, tokS: 5000 }],
      decode: [{ context: 0, steps: 64, seconds: 0.25, tokS: 256 }],
      peer: { torch: "1.13", threads: 2, blas: "OpenBLAS", prefill: [{ tokens: 2048, seconds: 4, tok_s: 500 }], decode: [{ context: 0, steps: 32, seconds: 0.3, tok_s: 100 }] },
    }), path.join(dir, "results"), md);
    let text = fs.readFileSync(md, "utf8");
    assert.match(text, /GEMM 1024³ f32 vs measured FMA peak \| ≥ 75% \| 360\.0 \/ 400\.0 GFLOP\/s = 90% \| yes/);
    assert.match(text, /prefill 2048 vs PyTorch eager \| ≥ 2× \| 5000\.0 \/ 500\.0 tok\/s = 10\.0× \| yes \| `npx m1 bench/);
    assert.match(text, /decode at context 0 vs PyTorch eager \| ≥ 3× \| 256\.0 \/ 100\.0 tok\/s = 2\.56× \| no/);
    assert.match(text, /decode \(context 0\) vs memory-bandwidth bound \| ≥ 60% \| 256\.0 \/ 400\.0 tok\/s = 64%/);
    // a later partial run replaces its suite; ratios with the older peer run are no longer formed
    writeReport(run("B", { prefill: [{ tokens: 2048, seconds: 0.2, tokS: 10000 }] }), path.join(dir, "results"), md);
    text = fs.readFileSync(md, "utf8");
    assert.doesNotMatch(text, /prefill 2048 vs PyTorch eager/);
    assert.match(text, /\| 2k \| 10000\.0 \|/);
  } finally {
    cleanup();
  }
});
