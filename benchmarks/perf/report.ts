// Results of the performance suite: one JSON file per suite (results/<suite>.json, each stamped with its run) and
// RESULTS.md rebuilt from all of them, every figure with the command that reproduces it. Ratios against the
// machine's ceilings and the peer are only formed between figures of the same run.
import fs from "node:fs";
import path from "node:path";
import type { Model } from "../../engine/model.ts";
import type { GemmResult } from "./machine.ts";
import type { DecodeResult, MemoryResult, PrefillResult, ScalingPoint } from "./engine.ts";
import { PEER_PACKAGES, type PeerResult } from "./peer.ts";

export interface Host {
  cpu: string;
  cores: number;
  isa: string;
  threads: number;
  node: string;
  loadavgStart: number;
  loadavgEnd?: number;
}

export interface Results {
  date: string;
  host: Host;
  checkpoint: string;
  seconds?: number;
  /** copyGBs: bytes copied per second (each byte once); readGBs: bytes read per second */
  machine?: { fmaPeakGflops: number; bf16DotPeakGflops: number; copyGBs: number; readGBs: number };
  gemm?: GemmResult[];
  activeWeightBytes?: number;
  prefill?: PrefillResult[];
  decode?: DecodeResult[];
  memory?: MemoryResult[];
  scaling?: ScalingPoint[];
  peer?: PeerResult;
  peerSkipped?: string;
}

const SUITE_KEYS = ["machine", "gemm", "activeWeightBytes", "prefill", "decode", "memory", "scaling", "peer", "peerSkipped"] as const;
type SuiteKey = (typeof SUITE_KEYS)[number];
interface Stamped { date: string; host: Host; checkpoint: string; data: unknown }

/** Prefills of n tokens timed per figure (the best is kept). */
export function prefillTries(n: number): number {
  return n >= 32768 ? 1 : n >= 8192 ? 2 : 5;
}

/** Bytes of weights one decoded token reads: attention and router of every layer, top-k experts, LM head, one
 *  embedding row and the norms. */
export function activeWeightBytes(model: Model): number {
  const c = model.config;
  const bytes = (name: string) => {
    const t = model.checkpoint.info(name);
    const per = t.dtype === "F32" ? 4 : 2;
    return t.shape.reduce((a, b) => a * b, 1) * per;
  };
  let total = bytes("lm_head.weight") + bytes("model.norm.weight") + bytes("model.embed_tokens.weight") / c.vocabSize;
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const attn = c.layerTypes[l] === "lightning"
      ? ["qkv_proj", "output_gate", "out_proj", "norm"]
      : ["q_proj", "k_proj", "v_proj", "o_proj"];
    for (const a of attn) total += bytes(`${p}self_attn.${a}.weight`);
    total += bytes(`${p}input_layernorm.weight`) + bytes(`${p}post_attention_layernorm.weight`) + bytes(`${p}block_sparse_moe.gate.weight`);
    const expert = ["w1", "w2", "w3"].reduce((s, w) => s + bytes(`${p}block_sparse_moe.experts.0.${w}.weight`), 0);
    total += c.topK * expert;
  }
  return total;
}

/** Writes the suites present in `r` to `dir` and rebuilds the markdown from every suite file there. */
export function writeReport(r: Results, dir: string, markdown: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const key of SUITE_KEYS) {
    if (r[key] === undefined) continue;
    const file = path.join(dir, `${key}.json`);
    const stamped: Stamped = { date: r.date, host: r.host, checkpoint: r.checkpoint, data: r[key] };
    fs.writeFileSync(file, JSON.stringify(stamped, null, 1) + "\n");
    written.push(path.relative(process.cwd(), file));
  }
  fs.writeFileSync(markdown, renderMarkdown(readSuites(dir)));
  written.push(path.relative(process.cwd(), markdown));
  return written;
}

function readSuites(dir: string): Partial<Record<SuiteKey, Stamped>> {
  const out: Partial<Record<SuiteKey, Stamped>> = {};
  for (const key of SUITE_KEYS) {
    const file = path.join(dir, `${key}.json`);
    if (fs.existsSync(file)) out[key] = JSON.parse(fs.readFileSync(file, "utf8")) as Stamped;
  }
  return out;
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const kTok = (n: number) => (n >= 1024 ? `${n / 1024}k` : String(n));

function renderMarkdown(s: Partial<Record<SuiteKey, Stamped>>): string {
  const anyRun = Object.values(s)[0];
  if (!anyRun) return "# Performance results\n\nNo results yet: run `npm run bench`.\n";
  const host = anyRun.host;
  const T = host.threads;
  const ckpt = "benchmarks/perf/checkpoints/bench-small";
  const cli = (args: string) => `\`npx m1 bench ${ckpt} ${args} --threads ${T} --json\``;
  const suite = (name: string) => `\`npm run bench -- --only ${name} --threads ${T}\``;
  const sameRun = (a?: Stamped, b?: Stamped) => a !== undefined && b !== undefined && a.date === b.date;
  const machine = s.machine?.data as Results["machine"];
  const gemm = s.gemm?.data as GemmResult[] | undefined;
  const pre = s.prefill?.data as PrefillResult[] | undefined;
  const dec = s.decode?.data as DecodeResult[] | undefined;
  const mem = s.memory?.data as MemoryResult[] | undefined;
  const sc = s.scaling?.data as ScalingPoint[] | undefined;
  const peer = s.peer?.data as PeerResult | undefined;
  const active = s.activeWeightBytes?.data as number | undefined;
  const lines: string[] = [];
  const runs = [...new Set(Object.values(s).map((x) => x!.date))].sort();
  lines.push("# Performance results", "");
  lines.push(`Generated by \`npm run bench\` (benchmarks/perf/run.ts). Machine: ${host.cpu}, ${host.cores} cores, ${host.isa} kernels, ` +
    `${T} threads, Node ${host.node}. Checkpoint: \`${ckpt}\` (\`npx m1 make-checkpoint bench-small ${ckpt}\`: hidden 512, ` +
    "8 layers (7 lightning + 1 softmax), 8 heads × 64, 2 KV heads, rotary_dim 32, 8 experts top-2, intermediate 704, vocab 16384, f32, seed 0).");
  lines.push("", `Runs: ${runs.join(", ")} (load average ${f2(host.loadavgStart)} at the start, ${host.loadavgEnd !== undefined ? f2(host.loadavgEnd) : "?"} at the end: ` +
    "other work on the machine lowers every figure; each is the best of a few tries).", "");

  // ---- targets
  const rows: string[][] = [];
  const g1024 = gemm?.find((g) => g.m === 1024 && g.n === 1024 && g.k === 1024 && g.dtype === "F32");
  if (g1024 && machine && sameRun(s.gemm, s.machine)) {
    const r = g1024.gflops / machine.fmaPeakGflops;
    rows.push(["GEMM 1024³ f32 vs measured FMA peak", "≥ 75%", `${f1(g1024.gflops)} / ${f1(machine.fmaPeakGflops)} GFLOP/s = ${(100 * r).toFixed(0)}%`, r >= 0.75 ? "yes" : "no", suite("gemm")]);
  }
  const p2k = pre?.find((p) => p.tokens === 2048);
  const peerP2k = peer?.prefill.find((p) => p.tokens === 2048);
  if (p2k && peerP2k && sameRun(s.prefill, s.peer)) {
    const r = p2k.tokS / peerP2k.tok_s;
    rows.push(["prefill 2048 vs PyTorch eager", "≥ 2×", `${f1(p2k.tokS)} / ${f1(peerP2k.tok_s)} tok/s = ${f1(r)}×`, r >= 2 ? "yes" : "no", cli(`--prefill 2048 --decode 0 --tries ${prefillTries(2048)}`)]);
  }
  for (const c of [0, 2048]) {
    const d = dec?.find((x) => x.context === c);
    const pd = peer?.decode.find((x) => x.context === c);
    if (d && pd && sameRun(s.decode, s.peer)) {
      const r = d.tokS / pd.tok_s;
      rows.push([`decode at context ${c} vs PyTorch eager`, "≥ 3×", `${f1(d.tokS)} / ${f1(pd.tok_s)} tok/s = ${f2(r)}×`, r >= 3 ? "yes" : "no", cli(`--prefill ${c || 1} --context ${c} --decode 64 --tries 5`)]);
    }
  }
  const d0 = dec?.find((x) => x.context === 0);
  if (d0 && active && machine && sameRun(s.decode, s.machine)) {
    const bound = (machine.copyGBs * 1e9) / active;
    const readBound = (machine.readGBs * 1e9) / active;
    const r = d0.tokS / bound;
    rows.push(["decode (context 0) vs memory-bandwidth bound", "≥ 60%", `${f1(d0.tokS)} / ${f1(bound)} tok/s = ${(100 * r).toFixed(0)}% ` +
      `(${mib(active)} MiB of weights per token at the copy bandwidth, ${f1(machine.copyGBs)} GB/s copied; ` +
      `${(100 * d0.tokS / readBound).toFixed(0)}% of the read bound, ${f1(machine.readGBs)} GB/s read)`, r >= 0.6 ? "yes" : "no", suite("decode")]);
  }
  const l4 = sc?.find((p) => p.tokens === 4096);
  const l32 = sc?.find((p) => p.tokens === 32768);
  if (l4 && l32) {
    const r = l32.lightningLayerS / l4.lightningLayerS;
    rows.push(["lightning prefill time(32k) / time(4k)", "≤ 9", `${f2(r)} (sublayer; kernel alone ${f2(l32.lightningKernelS / l4.lightningKernelS)})`, r <= 9 ? "yes" : "no", suite("scaling")]);
  }
  if (rows.length) {
    lines.push("## Targets", "", "| target | goal | reached | met | command |", "|---|---|---|---|---|");
    for (const r of rows) lines.push(`| ${r.join(" | ")} |`);
    lines.push("");
  }

  // ---- machine and GEMM
  if (machine || gemm) {
    lines.push("## Machine ceilings and GEMM", "", "| figure | value | command |", "|---|---|---|");
    if (machine) {
      lines.push(`| FMA peak (${T} threads, register-resident FMA loop) | ${f1(machine.fmaPeakGflops)} GFLOP/s | ${suite("machine")} |`);
      if (machine.bf16DotPeakGflops > 0) {
        lines.push(`| AVX512-BF16 dot-product peak (VDPBF16PS loop, 4 FLOPs per lane) | ${f1(machine.bf16DotPeakGflops)} GFLOP/s | ${suite("machine")} |`);
      }
      lines.push(`| copy bandwidth (1 GiB memcpy on ${T} threads; bytes copied, each counted once — STREAM would count read + write, ${f1(2 * machine.copyGBs)} GB/s) | ${f1(machine.copyGBs)} GB/s | ${suite("machine")} |`);
      lines.push(`| read bandwidth (a sum over 1 GiB on ${T} threads) | ${f1(machine.readGBs)} GB/s | ${suite("machine")} |`);
    }
    for (const g of gemm ?? []) {
      const pct = machine && sameRun(s.gemm, s.machine) ? ` (${(100 * g.gflops / machine.fmaPeakGflops).toFixed(0)}% of peak)` : "";
      lines.push(`| GEMM ${g.m}×${g.n}×${g.k}, ${g.dtype} weights | ${f1(g.gflops)} GFLOP/s${pct} | ${suite("gemm")} |`);
    }
    lines.push("");
    if (machine && machine.bf16DotPeakGflops > 0) {
      lines.push(`BF16 weights are converted to f32 in registers and multiplied with FMAs. VDPBF16PS does ${f1(machine.bf16DotPeakGflops / machine.fmaPeakGflops)}× the FLOPs ` +
        "of FMA here, but it multiplies bf16 by bf16: exact products with f32 activations need each activation split into three bf16 parts, " +
        `i.e. ${f1(machine.bf16DotPeakGflops / 3)} GFLOP/s of useful work, below the FMA peak; rounding activations to bf16 instead would change results.`, "");
    }
  }

  // ---- prefill
  if (pre) {
    const withPeer = sameRun(s.prefill, s.peer) && peer !== undefined;
    lines.push("## Prefill", "", `| tokens | engine tok/s | seconds |${withPeer ? " PyTorch eager tok/s | ratio |" : ""} command |`,
      `|---|---|---|${withPeer ? "---|---|" : ""}---|`);
    for (const p of pre) {
      const pp = peer?.prefill.find((x) => x.tokens === p.tokens);
      const peerCols = withPeer ? (pp ? ` ${f1(pp.tok_s)} | ${f1(p.tokS / pp.tok_s)}× |` : " — | — |") : "";
      lines.push(`| ${kTok(p.tokens)} | ${f1(p.tokS)} | ${f2(p.seconds)} |${peerCols} ${cli(`--prefill ${p.tokens} --decode 0 --tries ${prefillTries(p.tokens)}`)} |`);
    }
    lines.push("");
  }

  // ---- decode
  if (dec) {
    const withPeer = sameRun(s.decode, s.peer) && peer !== undefined;
    const bound = machine && active && sameRun(s.decode, s.machine) ? (machine.copyGBs * 1e9) / active : undefined;
    const readBound = bound && machine && active ? (machine.readGBs * 1e9) / active : undefined;
    lines.push("## Decode", "", `| context | engine tok/s |${bound ? " of copy bound | of read bound |" : ""}${withPeer ? " PyTorch eager tok/s | ratio |" : ""} command |`,
      `|---|---|${bound ? "---|---|" : ""}${withPeer ? "---|---|" : ""}---|`);
    for (const d of dec) {
      const pd = peer?.decode.find((x) => x.context === d.context);
      const b = bound && readBound ? ` ${(100 * d.tokS / bound).toFixed(0)}% | ${(100 * d.tokS / readBound).toFixed(0)}% |` : "";
      const peerCols = withPeer ? (pd ? ` ${f1(pd.tok_s)} | ${f2(d.tokS / pd.tok_s)}× |` : " — | — |") : "";
      lines.push(`| ${kTok(d.context)} | ${f1(d.tokS)} |${b}${peerCols} ${cli(`--prefill ${d.context || 1} --context ${d.context} --decode ${d.steps} --tries 5`)} |`);
    }
    if (bound && readBound && active) {
      lines.push("", `Bandwidth bounds: ${mib(active)} MiB of weights read per token (attention and router of every layer, the 2 routed experts, ` +
        `LM head) at the measured copy bandwidth = ${f1(bound)} tok/s, at the read bandwidth = ${f1(readBound)} tok/s; ` +
        "the KV cache read at long contexts comes on top. The copy bandwidth counts each byte copied once; STREAM's convention " +
        "(the read and the write) would double it, and the bound with it.");
    }
    lines.push("");
  }

  // ---- memory
  if (mem) {
    lines.push("## Decoding state vs context", "", "The lightning layers' state is constant; only the softmax layer's KV cache grows with the context.", "",
      "| context | lightning state MiB | KV cache MiB (valid rows) | KV reserved MiB | process RSS MiB | command |", "|---|---|---|---|---|---|");
    for (const m of mem) {
      lines.push(`| ${kTok(m.context)} | ${mib(m.lightningStateBytes)} | ${mib(m.kvCacheBytes)} | ${mib(m.kvReservedBytes)} | ${mib(m.rssBytes)} | ${suite("memory")} |`);
    }
    lines.push("", "RSS is measured after a full garbage collection with the op-output pool emptied; it includes the 366 MiB of f32 weights.", "");
  }

  // ---- scaling
  if (sc) {
    const base = sc[0];
    lines.push("## Scaling with length (one sublayer, prefill)", "",
      "Lightning attention is linear in the length (time per token flat); softmax attention is quadratic (time per token² flat once the n² term dominates).", "",
      "| tokens | lightning sublayer ms | µs per token | × vs first | softmax sublayer ms | ns per token² | × vs first | lightning kernel ms | attention kernel ms | command |",
      "|---|---|---|---|---|---|---|---|---|---|");
    for (const p of sc) {
      lines.push(`| ${kTok(p.tokens)} | ${f1(p.lightningLayerS * 1e3)} | ${f2(p.lightningLayerS / p.tokens * 1e6)} | ${f1(p.lightningLayerS / base.lightningLayerS)} | ` +
        `${f1(p.softmaxLayerS * 1e3)} | ${f2(p.softmaxLayerS / p.tokens ** 2 * 1e9)} | ${f1(p.softmaxLayerS / base.softmaxLayerS)} | ` +
        `${f1(p.lightningKernelS * 1e3)} | ${f1(p.attentionKernelS * 1e3)} | ${suite("scaling")} |`);
    }
    lines.push("");
  }

  // ---- peer
  if (peer) {
    lines.push("## The PyTorch eager peer", "",
      `\`benchmarks/peers/minimax_torch.py\`: the same architecture written the way transformers' MiniMax computes it (block-wise lightning loop, ` +
      `eager attention with the full score matrix, a loop over the experts hit), on the same checkpoint and ${peer.threads} threads. ` +
      `torch ${peer.torch} (Debian python3-torch) on ${peer.blas}; installed by \`npm run bench -- --install-peer\` (apt-get install ${PEER_PACKAGES.join(" ")}). ` +
      `Run as \`OMP_NUM_THREADS=${T} OPENBLAS_NUM_THREADS=${T} OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 benchmarks/peers/minimax_torch.py ${ckpt} --threads ${T} --tries 3 --prefill 512 2048 8192 --decode 32 --contexts 0 2048 8192\` ` +
      "(OpenBLAS 0.3.21 predates Zen 5 and would pick its Haswell kernels; SkylakeX gives it AVX-512). " +
      "It is not run at 32k: its eager attention would hold a 32k × 32k score matrix per head (32 GiB).");
    if (peer.logitsRelErr !== undefined) lines.push("", `Same function: on a 64-token prompt its last-position logits differ from the engine's by ${peer.logitsRelErr.toExponential(1)} (relative L2).`);
    lines.push("");
  } else if (s.peerSkipped) {
    lines.push("## The PyTorch eager peer", "", `Not run: ${s.peerSkipped.data as string}.`, "");
  }
  return lines.join("\n");
}
