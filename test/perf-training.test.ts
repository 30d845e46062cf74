// The training benchmark's FLOPs count and report, on hand-counted inputs (the measurement itself is a benchmark,
// not a test: benchmarks/perf/training.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { forwardFlops, trainingStepFlops } from "../benchmarks/perf/train-flops.ts";
import { trainingMarkdown, type TrainingResults } from "../benchmarks/perf/training-report.ts";
import type { ModelConfig } from "../engine/config.ts";

const cfg = {
  hiddenSize: 4, headDim: 2, numHeads: 2, numKvHeads: 1, numExperts: 3, topK: 2, intermediateSize: 5, vocabSize: 7,
  blockSize: 2, layerTypes: ["lightning", "softmax"],
} as unknown as ModelConfig;

test("training FLOPs: 3 × the forward's products and attention cores, counted by hand on a toy config", () => {
  // one sequence of 3 tokens; per token: LM head 2·4·7 = 56; per layer router 2·4·3 = 24, experts 2·3·2·4·5 = 240;
  // lightning projections 2·4·4·2·2 + 2·2·2·4 = 128 + 32; softmax projections 2·4·(2 + 2)·2 + 2·2·2·4 = 64 + 32
  const perToken = 56 + 2 * (24 + 240) + 160 + 96;
  // lightning blocks of 2 and 1 rows: 2 heads · (4m²d + 4md²) = 2·(32 + 32) + 2·(8 + 16); softmax 2 heads · 4·2·6
  const cores = 2 * (32 + 32) + 2 * (8 + 16) + 2 * 4 * 2 * 6;
  assert.equal(forwardFlops(cfg, [3]), 3 * perToken + cores);
  assert.equal(trainingStepFlops(cfg, [3, 3]), 3 * forwardFlops(cfg, [3, 3]));
  assert.equal(forwardFlops(cfg, [3, 3]), 2 * forwardFlops(cfg, [3]), "sequences are independent");
});

test("the training report forms its ratios within one run and says when a target is missed", () => {
  const r: TrainingResults = {
    date: "2026-01-01T00:00:00Z", checkpoint: "/x", batch: [2, 1024], fmaPeakGflops: 100,
    host: { cpu: "cpu", cores: 2, isa: "avx2", threads: 2, node: "v20", loadavgStart: 1, loadavgEnd: 2 },
    engine: { seconds: 10, tokS: 204.8, gflops: 40, flops: 4e11, loss: 9, profiledSeconds: 10, kernels: [{ kernel: "matmul", calls: 3, seconds: 6 }] },
    peer: { torch: "1.13", blas: "OpenBLAS", step: { batch: 2, tokens: 1024, seconds: 40, tok_s: 51.2, loss: 9, peak_rss_bytes: 2 ** 30, weight_bytes: 1, grad_bytes: 1, optimizer_bytes: 2 }, memory: [] },
    memory: [{ tokens: 1024, peakRssBytes: 2 ** 31, rssBeforeBytes: 0, weightBytes: 2 ** 29, masterBytes: 0, gradBytes: 2 ** 29, optimizerBytes: 2 ** 30, keptBytes: 0, logitsBytes: 0 }],
  };
  const md = trainingMarkdown(r);
  assert.match(md, /\| training step 2 × 1024 vs PyTorch eager \| ≥ 2× \| 204\.8 \/ 51\.2 tok\/s = 4\.00× \| yes \|/);
  assert.match(md, /\| training step GFLOP\/s vs measured FMA peak \| ≥ 50% \| 40\.0 \/ 100\.0 GFLOP\/s = 40% \| no \|/);
  assert.match(md, /\| matmul \| 3 \| 6\.000 \| 60\.0% \|/);
  assert.match(md, /\| outside native kernels .* \| \| 4\.000 \| 40\.0% \|/);
  assert.match(md, /\| 1024 \| 2048 MiB \| 512 MiB \| 512 MiB \| 1024 MiB \| 0 MiB \| 0 MiB \| 0 MiB \| 2048 MiB \| 1\.00 \| not run/);
  assert.doesNotMatch(md, /An RL step/);
  const rl = trainingMarkdown(r, {
    date: "2026-01-01T00:00:00Z", host: { ...r.host, threads: 1 }, model: "mini-40k", fmaPeakGflops: 100,
    shape: { problems: 4, group: 8, digits: 7, budget: 48, rounds: 4 },
    engine: { rollout: 0.25, logprobs: 0.125, backward: 0.25, optimiser: 0.125, newTokens: 1700 },
    peer: { rollout: 1, logprobs: 0.25, backward: 0.5, optimiser: 0.25, torch: "1.13", newTokens: 1690 },
  });
  assert.match(rl, /benchmarks\/rl\/step\.ts --model mini-40k --problems 4 --group 8 --digits 7 --budget 48 --rounds 4 --threads 1 --write/);
  assert.match(rl, /\| engine \| 0\.250 \| 0\.125 \| 0\.250 \| 0\.125 \| 0\.500 \| 0\.750 \| 1700 \|/);
  assert.match(rl, /Engine speed-up: 2\.00× on the update, 2\.67× on the step\./);
});
