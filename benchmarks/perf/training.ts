// `npm run bench:train [-- options]`: a training step (forward, backward, AdamW) of the engine on the seeded
// bench-small checkpoint at 2 × 1024 tokens against the PyTorch eager peer (autograd + torch.optim.AdamW) in the
// same run, the step's share per native kernel, its GFLOP/s against the FMA peak measured in the same run, and the
// peak resident memory of a step at 1k, 4k and 16k tokens against weights + gradients + optimiser state + kept
// activations. Writes benchmarks/perf/results/training.json and benchmarks/perf/TRAINING.md.
//
//   --threads T        compute threads of the engine and the peer (default: every core)
//   --checkpoint DIR   the benchmark checkpoint (default benchmarks/perf/checkpoints/bench-small, made if missing)
//   --tries N          timed steps of each side, the best kept (default 2)
//   --install-peer     apt-get install the peer's Debian packages first
//   --no-peer          skip the peer
//   --memory-lengths   tokens of the memory figures (default 1024,4096,16384)
//   --memory-child N   (internal) one step on one sequence of N tokens in this fresh process; prints JSON
import { KernelProfile, type KernelTime } from "./kernel-profile.ts"; // first: it wraps the addon before the engine binds it
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as native from "../../native/index.ts";
import { Model } from "../../engine/model.ts";
import { writeBenchCheckpoint } from "./checkpoint.ts";
import { cpuModel, fmaPeak } from "./machine.ts";
import { tokenIds } from "./engine.ts";
import { trainingStepFlops } from "./train-flops.ts";
import { installPeer, peerAvailable, runPeer, type PeerTrainResult } from "./peer.ts";
import { writeTrainingReport, type TrainingResults, type MemoryPoint } from "./training-report.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BATCH = [2, 1024] as const;
const OPTIMIZER = { lr: 1e-4, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.1 };

function log(msg: string): void {
  process.stderr.write(`bench:train: ${msg}\n`);
}

/** Resets the kernel's high-water mark of this process's resident memory. */
function resetPeakRss(): void {
  fs.writeFileSync("/proc/self/clear_refs", "5");
}

function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

/** One step on one sequence of n tokens in this (fresh) process: the peak RSS of the step and what it holds. */
async function memoryChild(dir: string, n: number): Promise<MemoryPoint> {
  const model = await Model.load(dir);
  const trainer = model.trainer(OPTIMIZER);
  const ids = tokenIds(n, model.config.vocabSize, 21);
  const rssBefore = process.memoryUsage().rss;
  resetPeakRss();
  const r = await trainer.step([ids]);
  const peak = peakRss();
  const { weightBytes, masterBytes, optimizerBytes } = trainer.memory;
  const gradBytes = model.checkpoint.names().reduce((s, name) => s + 4 * model.checkpoint.info(name).shape.reduce((a, b) => a * b, 1), 0);
  return { tokens: n, peakRssBytes: peak, rssBeforeBytes: rssBefore, weightBytes, masterBytes, gradBytes, optimizerBytes,
    keptBytes: r.keptBytes, logitsBytes: n * model.config.vocabSize * 4 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      threads: { type: "string" }, checkpoint: { type: "string" }, tries: { type: "string" }, "install-peer": { type: "boolean" },
      "no-peer": { type: "boolean" }, "memory-lengths": { type: "string" }, "memory-child": { type: "string" },
    },
  });
  const threads = values.threads ? Number(values.threads) : os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads: "${values.threads}" is not a thread count`);
  native.setThreads(threads);
  const dir = path.resolve(values.checkpoint ?? path.join(HERE, "checkpoints", "bench-small"));
  if (values["memory-child"]) {
    process.stdout.write(JSON.stringify(await memoryChild(dir, Number(values["memory-child"]))) + "\n");
    return;
  }
  const tries = Number(values.tries ?? "2");
  const lengths = (values["memory-lengths"] ?? "1024,4096,16384").split(",").map(Number);
  if (!fs.existsSync(path.join(dir, "model.safetensors"))) {
    log(`writing the bench-small checkpoint to ${dir}`);
    writeBenchCheckpoint("bench-small", dir);
  }
  const results: TrainingResults = {
    date: new Date().toISOString(),
    host: { cpu: cpuModel(), cores: os.availableParallelism(), isa: native.cpuInfo().isa, threads, node: process.version, loadavgStart: os.loadavg()[0] },
    checkpoint: dir,
    batch: [...BATCH],
    fmaPeakGflops: fmaPeak(),
  };

  log(`engine: training steps on ${BATCH[0]} × ${BATCH[1]} tokens`);
  const model = await Model.load(dir);
  const trainer = model.trainer(OPTIMIZER);
  const batch = Array.from({ length: BATCH[0] }, (_, i) => tokenIds(BATCH[1], model.config.vocabSize, 5 + i));
  await trainer.step(batch); // warm-up: first touch of the gradients and optimiser state
  let best = Infinity;
  for (let i = 0; i < tries; i++) {
    const t = performance.now();
    await trainer.step(batch);
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  const profile = new KernelProfile();
  profile.open();
  const t = performance.now();
  const last = await trainer.step(batch);
  const profiledSeconds = (performance.now() - t) / 1000;
  const kernels: KernelTime[] = profile.close();
  const flops = trainingStepFlops(model.config, batch.map((s) => s.length));
  results.engine = { seconds: best, tokS: (BATCH[0] * BATCH[1]) / best, gflops: flops / best / 1e9, flops, loss: last.loss, profiledSeconds, kernels };
  log(`engine: ${results.engine.tokS.toFixed(1)} tok/s, ${results.engine.gflops.toFixed(1)} GFLOP/s`);

  results.memory = [];
  for (const n of lengths) {
    log(`engine: peak memory of a step at ${n} tokens (fresh process)`);
    const r = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--memory-child", String(n), "--checkpoint", dir, "--threads", String(threads)],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new Error(`the memory run at ${n} tokens failed (exit ${r.status})`);
    results.memory.push(JSON.parse(r.stdout.trim().split("\n").pop()!) as MemoryPoint);
  }

  if (!values["no-peer"]) {
    if (values["install-peer"]) installPeer();
    if (!peerAvailable()) {
      results.peerSkipped = "python3-torch is not installed (run with --install-peer)";
    } else {
      log(`PyTorch peer: training step on ${BATCH.join(" × ")}`);
      const speed = runPeer(dir, { threads, prefill: [], decodeSteps: 0, contexts: [], tries: Math.max(1, tries - 1), train: [BATCH.join("x")] });
      const memory: PeerTrainResult[] = [];
      // eager softmax attention materialises n × n scores, probabilities and their gradients (8 heads: 8 GiB each at 16k)
      for (const n of lengths.filter((n) => n <= 4096)) {
        log(`PyTorch peer: peak memory of a step at ${n} tokens`);
        memory.push(...(runPeer(dir, { threads, prefill: [], decodeSteps: 0, contexts: [], tries: 1, train: [`1x${n}`] }).train ?? []));
      }
      results.peer = { torch: speed.torch, blas: speed.blas, step: speed.train![0], memory };
    }
  }
  results.host.loadavgEnd = os.loadavg()[0];
  const written = writeTrainingReport(results);
  log(`wrote ${written.join(", ")}`);
}

main().catch((e) => {
  process.stderr.write(`bench:train: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
