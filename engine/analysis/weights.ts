/**
 * Weight diff of two checkpoints of one architecture, tensor by tensor: ||A - B|| / ||A|| per tensor, per layer
 * and per module. Tensors are streamed in row chunks and dropped, so memory stays bounded by the chunk size
 * whatever the checkpoint's size (912 GB for the real M1).
 */
import { tableFromArrays, type Table } from "apache-arrow";
import type { Checkpoint } from "../checkpoint.ts";
import { tensorShapes } from "../plan.ts";
import { Figure } from "../figure.ts";
import { DISPLAY, type MimeBundle } from "../display.ts";
import { InputError } from "../errors.ts";
import { DTYPE_BYTES, shapeNumel, floatsInto, type DType } from "../tensor.ts";

export type Module = "embedding" | "attention" | "router" | "experts" | "norms" | "final_norm" | "lm_head";

export interface TensorDiff {
  name: string;
  layer: number | null;
  module: Module;
  /** ||A - B||² and ||A||², accumulated in double */
  diffSq: number;
  refSq: number;
  relative: number;
}

export interface DiffOptions {
  /** bytes read per chunk of rows (default 32 MiB) */
  chunkBytes?: number;
  onProgress?: (done: number, total: number, name: string) => void;
  signal?: AbortSignal;
}

export function moduleOf(name: string): { layer: number | null; module: Module } {
  const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
  if (!m) {
    if (name === "model.embed_tokens.weight") return { layer: null, module: "embedding" };
    if (name === "lm_head.weight") return { layer: null, module: "lm_head" };
    return { layer: null, module: "final_norm" };
  }
  const rest = m[2];
  const module: Module = rest.startsWith("self_attn.") ? "attention" : rest.includes(".gate.") ? "router" : rest.includes(".experts.") ? "experts" : "norms";
  return { layer: Number(m[1]), module };
}

export async function diffWeights(a: Checkpoint, b: Checkpoint, options: DiffOptions = {}): Promise<WeightDiff> {
  const { chunkBytes = 32 << 20, onProgress, signal } = options;
  const shapesA = tensorShapes(a.config);
  const shapesB = tensorShapes(b.config);
  for (const [name, shape] of shapesA) {
    const other = shapesB.get(name);
    if (!other || other.join() !== shape.join()) {
      throw new InputError(`cannot diff ${a.dir} and ${b.dir}: tensor "${name}" is [${shape.join(", ")}] in the first and ${other ? `[${other.join(", ")}]` : "absent"} in the second`);
    }
  }
  const names = [...shapesA.keys()];
  const scratch = new ChunkBuffers();
  const diffs: TensorDiff[] = [];
  for (const [i, name] of names.entries()) {
    signal?.throwIfAborted();
    const { shape, dtype } = a.info(name);
    const dtypeB = b.info(name).dtype;
    const rowElems = shapeNumel(shape.slice(1));
    const step = Math.max(1, Math.floor(chunkBytes / (DTYPE_BYTES[dtype] * Math.max(rowElems, 1))));
    let diffSq = 0, refSq = 0;
    for (let r = 0; r < shape[0]; r += step) {
      const count = (Math.min(shape[0], r + step) - r) * rowElems;
      const x = scratch.rows(a, name, dtype, r, count, 0);
      const y = scratch.rows(b, name, dtypeB, r, count, 1);
      for (let j = 0; j < count; j++) {
        diffSq += (x[j] - y[j]) ** 2;
        refSq += x[j] * x[j];
      }
    }
    diffs.push({ name, ...moduleOf(name), diffSq, refSq, relative: ratio(diffSq, refSq) });
    onProgress?.(i + 1, names.length, name);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return new WeightDiff([a.dir, b.dir], diffs);
}

/** Reused read and f32 buffers for the two checkpoints, so streaming allocates nothing per chunk. */
class ChunkBuffers {
  private raw: Uint16Array[] = [new Uint16Array(0), new Uint16Array(0)];
  private floats: Float32Array[] = [new Float32Array(0), new Float32Array(0)];

  /** `count` elements of `name` from row `row` on, as f32 (side 0 or 1). */
  rows(ckpt: Checkpoint, name: string, dtype: DType, row: number, count: number, side: number): Float32Array {
    if (!["F32", "BF16", "F16"].includes(dtype)) throw new InputError(`tensor "${name}" in ${ckpt.dir} is ${dtype}, not a float weight`);
    if (this.floats[side].length < count) this.floats[side] = new Float32Array(count);
    const floats = this.floats[side].subarray(0, count);
    if (dtype === "F32") {
      ckpt.readRowsInto(name, row, floats);
      return floats;
    }
    if (this.raw[side].length < count) this.raw[side] = new Uint16Array(count);
    const view = this.raw[side].subarray(0, count);
    ckpt.readRowsInto(name, row, view);
    return floatsInto(dtype as "BF16" | "F16", view, floats);
  }
}

function ratio(diffSq: number, refSq: number): number {
  return refSq === 0 ? (diffSq === 0 ? 0 : Infinity) : Math.sqrt(diffSq / refSq);
}

export class WeightDiff {
  constructor(readonly checkpoints: [string, string], readonly tensors: TensorDiff[]) {}

  /** Relative difference of the whole checkpoint. */
  get total(): number {
    return ratio(this.tensors.reduce((s, t) => s + t.diffSq, 0), this.tensors.reduce((s, t) => s + t.refSq, 0));
  }

  /** One row per (layer, module); layer -1 for the embedding, final norm and LM head. */
  byModule(): { layer: number; module: Module; relative: number }[] {
    const groups = new Map<string, { layer: number; module: Module; diffSq: number; refSq: number }>();
    for (const t of this.tensors) {
      const key = `${t.layer ?? -1}:${t.module}`;
      const g = groups.get(key) ?? { layer: t.layer ?? -1, module: t.module, diffSq: 0, refSq: 0 };
      g.diffSq += t.diffSq;
      g.refSq += t.refSq;
      groups.set(key, g);
    }
    return [...groups.values()].map((g) => ({ layer: g.layer, module: g.module, relative: ratio(g.diffSq, g.refSq) }));
  }

  table(): Table {
    return tableFromArrays({
      name: this.tensors.map((t) => t.name),
      layer: Int32Array.from(this.tensors, (t) => t.layer ?? -1),
      module: this.tensors.map((t) => t.module),
      relative: Float64Array.from(this.tensors, (t) => t.relative),
    });
  }

  /** Relative difference per layer, one line per module. */
  plot(): Figure {
    const rows = this.byModule().filter((r) => r.layer >= 0);
    const modules = [...new Set(rows.map((r) => r.module))];
    const data = modules.map((m) => {
      const rs = rows.filter((r) => r.module === m).sort((x, y) => x.layer - y.layer);
      return { type: "scatter", mode: "lines+markers", name: m, x: rs.map((r) => r.layer), y: rs.map((r) => r.relative) };
    });
    return new Figure(data, { xaxis: { title: { text: "layer" }, dtick: 1 }, yaxis: { title: { text: "‖A − B‖ / ‖A‖" } } },
      `Weight difference per layer (whole checkpoint: ${this.total.toFixed(4)})`);
  }

  [DISPLAY](): MimeBundle {
    return this.plot()[DISPLAY]();
  }
}
