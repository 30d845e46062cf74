// A checkpoint directory: config.json plus model.safetensors or model.safetensors.index.json with shards.
// Tensors are addressed by their canonical hub names (docs/architecture.md §6.1) and read lazily into an LRU of resident tensors.
// transformers-v5 fused expert tensors (docs/architecture.md §6.1) are served as per-expert slices read by offset.
import fs from "node:fs";
import path from "node:path";
import { loadConfig, type ModelConfig } from "./config.ts";
import { CheckpointError } from "./errors.ts";
import { loadShardIndex } from "./plan.ts";
import { SafetensorsFile } from "./safetensors.ts";
import { firstNonFinite, shapeNumel, type DType, type Tensor, type TensorData } from "./tensor.ts";

export interface TensorInfo { name: string; dtype: DType; shape: number[]; file: string }

/** Where a canonical tensor lives: a whole stored tensor, or one expert's part of a fused v5 tensor. */
type Source =
  | { kind: "direct"; file: string; stored: string }
  | { kind: "fused"; file: string; stored: string; expert: number; part: "w1" | "w3" | "w2" };

interface Location { file: SafetensorsFile; stored: string; dtype: DType; offset: number; shape: number[] }

const NATIVE_BUFFER = /\.(slope_rate|query_decay|key_decay|diagonal_decay)$/;
const V5_ROUTER = /^(model\.layers\.\d+\.)mlp\.gate\.weight$/;
const V5_EXPERTS = /^(model\.layers\.\d+\.)mlp\.experts\.(gate_up_proj|down_proj)$/;
const FLOAT_DTYPES: DType[] = ["F32", "BF16", "F16"];
const EMBEDDING = "model.embed_tokens.weight";
const LM_HEAD = "lm_head.weight";

export class Checkpoint {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly cache = new Map<string, Tensor>(); // insertion order = least recently used first
  /** tensors held for in-place changes (training): outside the LRU, never evicted, what every read returns */
  private readonly held = new Map<string, Tensor>();
  private resident = 0;
  private evictCount = 0;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    private readonly sources: Map<string, Source>,
    private readonly indexPath: string | null,
    private readonly budget: number,
  ) {}

  static open(dir: string, options: { residentBudgetBytes?: number; config?: ModelConfig } = {}): Checkpoint {
    if (!exists(dir, "dir")) throw new CheckpointError(`${dir}: checkpoint directory not found`);
    const budget = options.residentBudgetBytes ?? Infinity;
    if (!(budget >= 0)) throw new CheckpointError(`${dir}: residentBudgetBytes must be >= 0, got ${budget}`);
    const configPath = path.join(dir, "config.json");
    if (!options.config && !exists(configPath, "file")) throw new CheckpointError(`${dir}: no config.json in checkpoint directory`);
    const config = options.config ?? loadConfig(configPath);

    const single = path.join(dir, "model.safetensors");
    const indexPath = path.join(dir, "model.safetensors.index.json");
    const stored: [string, string][] = [];
    let opened: SafetensorsFile | null = null;
    if (exists(single, "file")) {
      opened = SafetensorsFile.open(single);
      for (const name of opened.names()) stored.push([name, single]);
    } else if (exists(indexPath, "file")) {
      const index = loadShardIndex(indexPath);
      const checked = new Set<string>();
      for (const [name, shard] of Object.entries(index.weight_map)) {
        const file = path.join(dir, shard);
        if (!checked.has(file) && !exists(file, "file")) {
          throw new CheckpointError(`${indexPath}: shard file ${file} (holding tensor "${name}") does not exist`);
        }
        checked.add(file);
        stored.push([name, file]);
      }
    } else {
      throw new CheckpointError(`${dir}: no weights found (looked for model.safetensors and model.safetensors.index.json)`);
    }
    const where = opened ? single : indexPath;
    try {
      const ckpt = new Checkpoint(dir, config, canonicalSources(stored, config, where), opened ? null : indexPath, budget);
      if (opened) ckpt.files.set(single, opened);
      return ckpt;
    } catch (e) {
      opened?.close();
      throw e;
    }
  }

  /** Canonical names of the stored tensors (a tied lm_head is not listed, but `has`/`get` accept it). */
  names(): string[] {
    return [...this.sources.keys()];
  }

  has(name: string): boolean {
    return this.sources.has(this.resolveAlias(name));
  }

  /** Where a weight's elements lie on disk (contiguous, row-major), with the checks of `weight`: for readers of
   *  the files other than this one. */
  location(name: string, shape: number[]): TensorInfo & { byteOffset: number } {
    const loc = this.checkWeight(name, shape);
    return { name, dtype: loc.dtype, shape: loc.shape, file: loc.file.path, byteOffset: loc.file.byteOffset(loc.stored, loc.offset) };
  }

  info(name: string): TensorInfo {
    const loc = this.locate(name);
    return { name, dtype: loc.dtype, shape: loc.shape, file: loc.file.path };
  }

  get(name: string): Tensor {
    const key = this.resolveAlias(name);
    const held = this.held.get(key);
    if (held) return held;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const loc = this.locate(key);
    const t = loc.file.readContiguous(loc.stored, loc.offset, loc.shape);
    if (t.nbytes <= this.budget) {
      this.cache.set(key, t);
      this.resident += t.nbytes;
      for (const [k, v] of this.cache) {
        if (this.resident <= this.budget) break;
        this.cache.delete(k);
        this.resident -= v.nbytes;
      }
    }
    return t;
  }

  /** Reads every tensor once and fails on the first that holds NaN or ±Infinity, naming it and its file. */
  checkFinite(): void {
    for (const name of this.names()) {
      const t = this.get(name);
      const at = firstNonFinite(t.dtype, t.data);
      if (at >= 0) {
        throw new CheckpointError(`${name} in ${this.info(name).file} is not finite: ${t.toFloat32()[at]} at element ${at} of [${t.shape.join(", ")}] (${t.dtype})`);
      }
    }
  }

  /** Fills `dst` with whole rows of a tensor's first dimension from `rowStart` on, straight from disk (nothing kept
   *  resident), or from memory for a held tensor. */
  readRowsInto(name: string, rowStart: number, dst: TensorData): void {
    const key = this.resolveAlias(name);
    const loc = this.locate(key);
    const rowSize = shapeNumel(loc.shape.slice(1));
    const rows = dst.length / rowSize;
    if (!(Number.isInteger(rows) && Number.isInteger(rowStart) && rowStart >= 0 && rowStart + rows <= (loc.shape[0] ?? 1))) {
      throw new CheckpointError(`tensor "${name}" in ${loc.file.path}: cannot read ${dst.length} elements as whole rows from row ${rowStart} of [${loc.shape.join(",")}]`);
    }
    const held = this.held.get(key);
    if (held) (dst as Float32Array).set((held.data as Float32Array).subarray(rowStart * rowSize, rowStart * rowSize + dst.length));
    else loc.file.readContiguousInto(loc.stored, loc.offset + rowStart * rowSize, dst);
  }

  /**
   * Keeps a weight in memory for changing it in place (training), outside the resident budget and never evicted;
   * every later read returns this tensor. After changing held tensors, call `changed()`.
   */
  hold(name: string): Tensor {
    const key = this.resolveAlias(name);
    let t = this.held.get(key);
    if (!t) {
      t = this.get(key);
      if (this.cache.delete(key)) this.resident -= t.nbytes;
      this.held.set(key, t);
    }
    return t;
  }

  /** Canonical names of the held tensors: those whose values may differ from the files. */
  heldNames(): string[] {
    return [...this.held.keys()];
  }

  /** Says that held tensors were changed: whoever keeps copies derived from them (evictions) drops them. */
  changed(): void {
    this.evictCount++;
  }

  /** `get` for a weight: checks the shape (before reading) and that the dtype is floating point. */
  weight(name: string, shape: number[]): Tensor {
    this.checkWeight(name, shape);
    return this.get(name);
  }

  /** Where a weight is, after checking its shape and that its dtype is floating point. */
  private checkWeight(name: string, shape: number[]): Location {
    const loc = this.locate(name);
    const file = loc.file.path;
    if (loc.shape.length !== shape.length || loc.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `tensor "${name}" in ${file} has shape [${loc.shape.join(",")}], expected [${shape.join(",")}]`);
    }
    if (!FLOAT_DTYPES.includes(loc.dtype)) {
      throw new CheckpointError(`tensor "${name}" in ${file} has dtype ${loc.dtype}, expected one of ${FLOAT_DTYPES.join(", ")}`);
    }
    return loc;
  }

  residentBytes(): number {
    return this.resident;
  }

  /** True when no resident budget applies: every tensor read stays in memory (until evict). */
  get fullyResident(): boolean {
    return this.budget === Infinity;
  }

  /** Bytes of the checkpoint's safetensors files on disk (what holding every tensor in memory costs, about). */
  fileBytes(): number {
    const files = new Set([...this.sources.values()].map((src) => src.file));
    let bytes = 0;
    for (const f of files) bytes += fs.statSync(f).size;
    return bytes;
  }

  /** Number of evict and `changed` calls so far: whoever keeps tensors of this checkpoint, or copies derived from
   *  them, drops them when it changes. */
  get evictions(): number {
    return this.evictCount;
  }

  /** Drop resident tensors whose canonical name starts with `prefix` (all when omitted). */
  evict(prefix = ""): void {
    this.evictCount++;
    for (const [k, v] of this.cache) {
      if (!k.startsWith(prefix)) continue;
      this.cache.delete(k);
      this.resident -= v.nbytes;
    }
  }

  /** Files (paths) holding tensors of model.layers.{layer}, sorted. */
  shardsForLayer(layer: number): string[] {
    const prefix = `model.layers.${layer}.`;
    const files = new Set<string>();
    for (const [name, src] of this.sources) if (name.startsWith(prefix)) files.add(src.file);
    return [...files].sort();
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
    this.held.clear();
    this.evict();
    this.closed = true;
  }

  private resolveAlias(name: string): string {
    return name === LM_HEAD && this.config.tieWordEmbeddings && !this.sources.has(LM_HEAD) ? EMBEDDING : name;
  }

  private locate(name: string): Location {
    if (this.closed) throw new CheckpointError(`${this.dir}: checkpoint is closed (reading tensor "${name}")`);
    const src = this.sources.get(this.resolveAlias(name));
    if (!src) {
      const index = this.indexPath ? ` (index ${this.indexPath})` : "";
      throw new CheckpointError(`tensor "${name}" not found in checkpoint ${this.dir}${index}`);
    }
    const file = this.openFile(src.file);
    if (!file.has(src.stored)) {
      throw new CheckpointError(`${this.indexPath}: maps tensor "${src.stored}" to ${src.file}, which does not contain it`);
    }
    const { dtype, shape } = file.info(src.stored);
    if (src.kind === "direct") return { file, stored: src.stored, dtype, offset: 0, shape };
    return { file, stored: src.stored, dtype, ...fusedSlice(src, shape, this.config.numExperts) };
  }

  private openFile(file: string): SafetensorsFile {
    let f = this.files.get(file);
    if (!f) {
      f = SafetensorsFile.open(file);
      this.files.set(file, f);
    }
    return f;
  }
}

/**
 * Element offset and shape of one expert's w1/w3/w2 inside a fused tensor: gate_up_proj is [E, 2F, H] with rows
 * 0..F-1 = w1 and F..2F-1 = w3 of each expert; down_proj is [E, H, F]. Each slice is contiguous.
 */
function fusedSlice(src: Extract<Source, { kind: "fused" }>, shape: number[], numExperts: number) {
  const gateUp = src.part !== "w2";
  if (shape.length !== 3 || shape[0] !== numExperts || (gateUp && shape[1] % 2 !== 0)) {
    throw new CheckpointError(
      `tensor "${src.stored}" in ${src.file} has shape [${shape.join(",")}], expected ` +
      (gateUp ? `[${numExperts}, 2*intermediate, hidden]` : `[${numExperts}, hidden, intermediate]`));
  }
  const [, rows, cols] = shape;
  const expertStart = src.expert * rows * cols;
  if (!gateUp) return { offset: expertStart, shape: [rows, cols] };
  const half = rows / 2;
  return { offset: expertStart + (src.part === "w3" ? half * cols : 0), shape: [half, cols] };
}

/** Map stored names to canonical hub names, dropping native buffers and splitting fused experts. */
function canonicalSources(stored: [string, string][], config: ModelConfig, where: string): Map<string, Source> {
  const out = new Map<string, Source>();
  const add = (name: string, src: Source) => {
    const prev = out.get(name);
    if (prev) throw new CheckpointError(`${where}: tensor "${name}" is stored twice (as "${prev.stored}" and "${src.stored}")`);
    out.set(name, src);
  };
  for (const [name, file] of stored) {
    if (NATIVE_BUFFER.test(name)) continue;
    const router = V5_ROUTER.exec(name);
    const fused = V5_EXPERTS.exec(name);
    if (router) {
      add(`${router[1]}block_sparse_moe.gate.weight`, { kind: "direct", file, stored: name });
    } else if (fused) {
      const parts = fused[2] === "gate_up_proj" ? (["w1", "w3"] as const) : (["w2"] as const);
      for (let e = 0; e < config.numExperts; e++) {
        for (const part of parts) {
          add(`${fused[1]}block_sparse_moe.experts.${e}.${part}.weight`, { kind: "fused", file, stored: name, expert: e, part });
        }
      }
    } else {
      add(name, { kind: "direct", file, stored: name });
    }
  }
  return out;
}

function exists(p: string, kind: "file" | "dir"): boolean {
  try {
    const st = fs.statSync(p);
    return kind === "dir" ? st.isDirectory() : st.isFile();
  } catch {
    return false;
  }
}
