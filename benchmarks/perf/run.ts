// `npm run bench [-- options]`: the performance suite. Measures the machine's ceilings, GEMM, and the engine on the
// seeded `bench-small` checkpoint (prefill, decode, memory, per-layer scaling), runs the PyTorch eager peer on the
// same checkpoint when Debian's python3-torch is present, and writes benchmarks/perf/results/*.json and
// benchmarks/perf/RESULTS.md, each figure with the command that reproduces it.
//
//   --threads T        compute threads of the engine and the peer (default: every core)
//   --only a,b         suites: machine, gemm, prefill, decode, memory, scaling, peer (default: all)
//   --checkpoint DIR   the benchmark checkpoint (default benchmarks/perf/checkpoints/bench-small, made if missing)
//   --install-peer     apt-get install the peer's Debian packages first (python3-torch, libopenblas0-pthread)
//   --no-peer          skip the peer
//   --quick            shorter lengths (a smoke run, not for the record)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as native from "../../native/index.ts";
import { Model } from "../../engine/model.ts";
import { writeBenchCheckpoint } from "./checkpoint.ts";
import { bf16DotPeak, copyBandwidth, cpuModel, fmaPeak, gemm, readBandwidth, type GemmResult } from "./machine.ts";
import { collectGarbage, decode, memory, prefill, scaling, tokenIds, warmUp, type DecodeResult, type MemoryResult, type PrefillResult, type ScalingPoint } from "./engine.ts";
import { installPeer, peerAvailable, runPeer, type PeerResult } from "./peer.ts";
import { activeWeightBytes, prefillTries, writeReport, type Results } from "./report.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SUITES = ["machine", "gemm", "prefill", "decode", "memory", "scaling", "peer"] as const;
type Suite = (typeof SUITES)[number];

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      threads: { type: "string" },
      only: { type: "string" },
      checkpoint: { type: "string" },
      "install-peer": { type: "boolean" },
      "no-peer": { type: "boolean" },
      quick: { type: "boolean" },
    },
  });
  const threads = values.threads ? Number(values.threads) : os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads: "${values.threads}" is not a thread count`);
  native.setThreads(threads);
  const only = new Set((values.only ?? SUITES.join(",")).split(",") as Suite[]);
  for (const s of only) if (!SUITES.includes(s)) throw new Error(`--only: unknown suite "${s}" (suites: ${SUITES.join(", ")})`);
  if (values["no-peer"]) only.delete("peer");
  const quick = values.quick ?? false;
  const dir = path.resolve(values.checkpoint ?? path.join(HERE, "checkpoints", "bench-small"));

  const results: Results = {
    date: new Date().toISOString(),
    host: { cpu: cpuModel(), cores: os.availableParallelism(), isa: native.cpuInfo().isa, threads, node: process.version, loadavgStart: os.loadavg()[0] },
    checkpoint: dir,
  };
  const t0 = Date.now();

  if (only.has("machine") || only.has("gemm") || only.has("decode")) {
    log("machine ceilings"); // the bandwidths are measured again after the decode at context 0
    results.machine = { fmaPeakGflops: fmaPeak(), bf16DotPeakGflops: bf16DotPeak(), copyGBs: copyBandwidth(), readGBs: readBandwidth() };
  }
  if (only.has("gemm")) {
    log("GEMM");
    const shapes: [number, number, number][] = [[1024, 1024, 1024], [64, 1536, 512], [32, 1536, 512], [17, 1536, 512], [1, 16384, 512]];
    const g: GemmResult[] = [];
    for (const [m, n, k] of shapes) g.push(gemm(m, n, k, "F32"));
    g.push(gemm(1024, 1024, 1024, "BF16"));
    results.gemm = g;
  }

  const needsModel = ["prefill", "decode", "memory", "scaling", "peer"].some((s) => only.has(s as Suite));
  if (needsModel) {
    if (!fs.existsSync(path.join(dir, "model.safetensors"))) {
      log(`writing the bench-small checkpoint to ${dir}`);
      writeBenchCheckpoint("bench-small", dir);
    }
    const model = await Model.load(dir);
    results.activeWeightBytes = activeWeightBytes(model);
    log("warming up");
    await warmUp(model);
    const lengths = quick ? [512, 2048] : [512, 2048, 8192, 32768];
    const caches = new Map<number, Awaited<ReturnType<typeof prefill>>["cache"]>();
    if (only.has("prefill") || only.has("decode") || only.has("memory")) {
      const pre: PrefillResult[] = [];
      const mem: MemoryResult[] = [];
      mem.push(await memory(model.newCache(), 0));
      for (const n of lengths) {
        log(`prefill ${n}`);
        const r = await prefill(model, n, prefillTries(n));
        pre.push({ tokens: r.tokens, seconds: r.seconds, tokS: r.tokS });
        mem.push(await memory(r.cache, n));
        if (n === 8192 || n === 32768 || (quick && n === 2048)) caches.set(n, r.cache);
        collectGarbage();
      }
      results.prefill = pre;
      if (only.has("memory")) results.memory = mem;
    }
    if (only.has("decode")) {
      const dec = new Map<number, DecodeResult>();
      const steps = quick ? 16 : 64;
      // two rounds over the contexts, the faster of the two kept: a burst of other work (or the garbage collector
      // after a long prefill) then spoils at most one of them
      for (let round = 0; round < 2; round++) {
        for (const c of [0, ...caches.keys()]) {
          log(`decode at context ${c} (round ${round + 1})`);
          const r = await decode(model, c, steps, c === 0 ? model.newCache() : caches.get(c), 5);
          const prev = dec.get(c);
          if (!prev || r.tokS > prev.tokS) dec.set(c, r);
          collectGarbage();
          // the bandwidths again, right after the decode they bound (the larger of the measurements is kept)
          if (c === 0 && results.machine) {
            results.machine.copyGBs = Math.max(results.machine.copyGBs, copyBandwidth());
            results.machine.readGBs = Math.max(results.machine.readGBs, readBandwidth());
          }
        }
      }
      results.decode = [...dec.values()];
    }
    caches.clear();
    if (only.has("scaling")) {
      const pts: ScalingPoint[] = [];
      for (const n of quick ? [1024, 2048, 4096] : [1024, 2048, 4096, 8192, 16384, 32768]) {
        log(`scaling ${n}`);
        pts.push(await scaling(model, n));
        collectGarbage();
      }
      results.scaling = pts;
    }
    if (only.has("peer")) {
      if (values["install-peer"]) {
        log("installing the peer (apt-get install python3-torch libopenblas0-pthread)");
        installPeer();
      }
      if (!peerAvailable()) {
        log("no PyTorch peer: /usr/bin/python3 cannot import torch (npm run bench -- --install-peer installs it)");
        results.peerSkipped = "python3-torch is not installed (run with --install-peer)";
      } else {
        const checkIds = tokenIds(64, model.config.vocabSize, 13);
        const ours = (await model.forward(checkIds, { logits: "last" })).logits.f32;
        const prefillLens = quick ? [512, 2048] : [512, 2048, 8192];
        const contexts = quick ? [0] : [0, 2048, 8192];
        log(`PyTorch peer: prefill ${prefillLens.join(", ")}; decode at ${contexts.join(", ")}`);
        const peer: PeerResult = runPeer(dir, { threads, prefill: prefillLens, decodeSteps: quick ? 16 : 32, contexts, checkIds, tries: 3 }, ours);
        results.peer = peer;
        // the engine at the peer's decode contexts that the decode suite does not cover
        const extra: DecodeResult[] = [];
        for (const c of contexts) {
          if (results.decode?.some((d) => d.context === c)) continue;
          log(`decode at context ${c} (for the peer comparison)`);
          extra.push(await decode(model, c, quick ? 16 : 64, undefined, 5));
        }
        results.decode = [...(results.decode ?? []), ...extra].sort((a, b) => a.context - b.context);
      }
    }
  }
  results.host.loadavgEnd = os.loadavg()[0];
  results.seconds = (Date.now() - t0) / 1000;
  const written = writeReport(results, path.join(HERE, "results"), path.join(HERE, "RESULTS.md"));
  log(`wrote ${written.join(", ")} in ${results.seconds.toFixed(0)} s`);
  return 0;
}

main().then((code) => (process.exitCode = code), (e) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
