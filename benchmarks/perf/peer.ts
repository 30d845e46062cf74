// The PyTorch eager peer (benchmarks/peers/minimax_torch.py), run with Debian's python3-torch on the same
// checkpoint and thread count. Optional: the suite reports it only where the interpreter has torch.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as native from "../../native/index.ts";

export const PYTHON = "/usr/bin/python3"; // Debian's interpreter: python3-torch installs there, not into pyenv
export const PEER_SCRIPT = fileURLToPath(new URL("../peers/minimax_torch.py", import.meta.url));
/** Debian packages of the peer: torch, and OpenBLAS so that torch's generic BLAS is not the reference BLAS. */
export const PEER_PACKAGES = ["python3-torch", "libopenblas0-pthread"];

export interface PeerResult {
  torch: string;
  threads: number;
  blas: string;
  prefill: { tokens: number; seconds: number; tok_s: number }[];
  decode: { context: number; steps: number; seconds: number; tok_s: number }[];
  /** training steps (forward, loss.backward(), torch.optim.AdamW) on [batch, tokens] batches */
  train?: PeerTrainResult[];
  /** ‖peer − engine‖ / ‖engine‖ over the last position's logits of a short prompt */
  logitsRelErr?: number;
}

export interface PeerTrainResult {
  batch: number;
  tokens: number;
  seconds: number;
  tok_s: number;
  loss: number;
  /** the process's peak resident memory during the step (VmHWM, reset before it) */
  peak_rss_bytes: number;
  weight_bytes: number;
  grad_bytes: number;
  optimizer_bytes: number;
}

export function peerAvailable(): boolean {
  const r = spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" });
  return !r.error && r.status === 0;
}

/** apt-get installs the peer's packages (needs root); throws with apt's output on failure. */
export function installPeer(): void {
  for (const args of [["update"], ["-o", "DPkg::Lock::Timeout=300", "install", "-y", ...PEER_PACKAGES]]) {
    const r = spawnSync("apt-get", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (r.error || r.status !== 0) throw new Error(`apt-get ${args.join(" ")} failed: ${r.error?.message ?? r.stderr}`);
  }
}

/** Which BLAS library torch's generic BLAS resolves to (Debian alternatives). */
function blasName(): string {
  try {
    const target = fs.realpathSync("/etc/alternatives/libblas.so.3-x86_64-linux-gnu");
    if (target.includes("openblas")) return `OpenBLAS (${path.basename(path.dirname(target))})`;
    if (target.includes("blis")) return "BLIS";
    return "reference BLAS";
  } catch {
    return "unknown";
  }
}

/**
 * The environment of the peer: thread counts pinned to ours. OpenBLAS 0.3.21 (Debian 12) predates Zen 5 and
 * falls back to its Haswell kernels there; on an AVX-512 CPU it is given its SkylakeX (AVX-512) kernels, the
 * fastest it has, so that the peer is not handicapped by a stale CPU table.
 */
export function peerEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  if (native.cpuInfo().supported.includes("avx512")) env.OPENBLAS_CORETYPE = "SkylakeX";
  return env;
}

export interface PeerOptions {
  threads: number;
  prefill: number[];
  decodeSteps: number;
  contexts: number[];
  /** prompt whose last-position logits are compared with the engine's */
  checkIds?: number[];
  tries?: number;
  /** training steps on batches "BATCHxTOKENS" */
  train?: string[];
}

export function peerCommand(dir: string, o: PeerOptions): string[] {
  const args = [PEER_SCRIPT, dir, "--threads", String(o.threads), "--tries", String(o.tries ?? 2)];
  if (o.prefill.length) args.push("--prefill", ...o.prefill.map(String));
  if (o.decodeSteps > 0) args.push("--decode", String(o.decodeSteps), "--contexts", ...o.contexts.map(String));
  if (o.train?.length) args.push("--train", ...o.train);
  return args;
}

/** Runs the peer; `engineLogits` (the engine's last-position logits for checkIds) gives logitsRelErr. */
export function runPeer(dir: string, o: PeerOptions, engineLogits?: Float32Array): PeerResult {
  const args = peerCommand(dir, o);
  const logitsFile = path.join(os.tmpdir(), `m1-peer-logits-${process.pid}.bin`);
  if (o.checkIds) args.push("--logits-ids", o.checkIds.join(","), "--logits-out", logitsFile);
  const r = spawnSync(PYTHON, args, { encoding: "utf8", env: peerEnv(o.threads), stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 24 });
  if (r.error || r.status !== 0) throw new Error(`the PyTorch peer failed (${PYTHON} ${args.join(" ")}): ${r.error?.message ?? `exit ${r.status}`}`);
  const result = JSON.parse(r.stdout.trim().split("\n").pop()!) as PeerResult;
  result.blas = blasName();
  if (o.checkIds && engineLogits) {
    const buf = fs.readFileSync(logitsFile);
    fs.rmSync(logitsFile, { force: true });
    const peer = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    let num = 0;
    let den = 0;
    for (let i = 0; i < engineLogits.length; i++) {
      num += (peer[i] - engineLogits[i]) ** 2;
      den += engineLogits[i] ** 2;
    }
    result.logitsRelErr = Math.sqrt(num / den);
  }
  return result;
}
