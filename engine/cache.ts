import type { ModelConfig } from "./config.ts";

/** Keys and values of one softmax layer, [capacity, kvHeads, headDim] each, grown as tokens arrive. */
export class KvCache {
  keys: Float32Array;
  values: Float32Array;
  length = 0;

  constructor(readonly rowWidth: number, capacity = 64) {
    this.keys = new Float32Array(capacity * rowWidth);
    this.values = new Float32Array(capacity * rowWidth);
  }

  get capacity(): number {
    return this.keys.length / this.rowWidth;
  }

  /** Makes room for n more rows (the arrays are replaced when they grow). */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.capacity) return;
    // a long prefill reserves what it needs; decode steps then grow the reserve by half at a time
    const cap = Math.max(need, Math.ceil(this.capacity * 1.5));
    const keys = new Float32Array(cap * this.rowWidth);
    const values = new Float32Array(cap * this.rowWidth);
    keys.set(this.keys.subarray(0, this.length * this.rowWidth));
    values.set(this.values.subarray(0, this.length * this.rowWidth));
    this.keys = keys;
    this.values = values;
  }

  /** Appends n rows of keys and values (each [n, kvHeads, headDim]). */
  append(k: Float32Array, v: Float32Array, n: number): void {
    this.reserve(n);
    this.keys.set(k.subarray(0, n * this.rowWidth), this.length * this.rowWidth);
    this.values.set(v.subarray(0, n * this.rowWidth), this.length * this.rowWidth);
    this.length += n;
  }

  clone(): KvCache {
    const c = new KvCache(this.rowWidth, Math.max(1, this.length));
    c.append(this.keys, this.values, this.length);
    return c;
  }

  /** Bytes in use (the valid rows), not the reserved capacity. */
  get bytes(): number {
    return 2 * this.length * this.rowWidth * 4;
  }
}

/**
 * Decoding state of the whole model: a constant-size f32 state S [heads, d, d] per lightning layer
 * and a growing KV cache per softmax layer. `position` counts every token seen (the next RoPE position).
 */
export class ModelCache {
  position = 0;
  readonly lightning: (Float32Array | null)[];
  readonly kv: (KvCache | null)[];

  constructor(readonly config: ModelConfig) {
    const { numHeads, headDim, numKvHeads } = config;
    this.lightning = config.layerTypes.map((t) => (t === "lightning" ? new Float32Array(numHeads * headDim * headDim) : null));
    this.kv = config.layerTypes.map((t) => (t === "softmax" ? new KvCache(numKvHeads * headDim) : null));
  }

  clone(): ModelCache {
    const c = new ModelCache(this.config);
    c.position = this.position;
    this.lightning.forEach((s, l) => s && c.lightning[l]!.set(s));
    this.kv.forEach((kv, l) => {
      if (kv) c.kv[l] = kv.clone();
    });
    return c;
  }

  /** Resident bytes: lightning states (constant) plus the softmax layers' keys and values (linear in tokens). */
  memory(): { lightningStateBytes: number; kvCacheBytes: number; total: number } {
    let lightningStateBytes = 0;
    let kvCacheBytes = 0;
    for (const s of this.lightning) if (s) lightningStateBytes += s.byteLength;
    for (const kv of this.kv) if (kv) kvCacheBytes += kv.bytes;
    return { lightningStateBytes, kvCacheBytes, total: lightningStateBytes + kvCacheBytes };
  }
}
