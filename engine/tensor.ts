// Host tensors: a dtype, a shape and a typed array that can be handed straight to the native addon.
import { InputError, M1Error } from "./errors.ts";
import { DISPLAY, tensorBundle, type MimeBundle } from "./display.ts";

export type DType = "F32" | "BF16" | "F16" | "I32" | "I64";
export type TensorData = Float32Array | Uint16Array | Int32Array | BigInt64Array;

export const DTYPE_BYTES: Record<DType, number> = { F32: 4, BF16: 2, F16: 2, I32: 4, I64: 8 };

export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Index of the first NaN or ±Infinity among a float tensor's values, -1 if none (integers: always -1). BF16 and F16
 *  are read by their exponent bits, all ones for exactly the non-finite values. */
export function firstNonFinite(dtype: DType, data: TensorData): number {
  if (dtype === "I32" || dtype === "I64") return -1;
  if (dtype === "F32") {
    const f = data as Float32Array;
    for (let i = 0; i < f.length; i++) if (f[i] - f[i] !== 0) return i; // NaN - NaN and Inf - Inf are NaN
    return -1;
  }
  const exponent = dtype === "BF16" ? 0x7f80 : 0x7c00;
  const u = data as Uint16Array;
  for (let i = 0; i < u.length; i++) if ((u[i] & exponent) === exponent) return i;
  return -1;
}

/** A fresh, zero-filled, properly aligned array for `numel` elements of `dtype`. */
export function allocData(dtype: DType, numel: number): TensorData {
  switch (dtype) {
    case "F32": return new Float32Array(numel);
    case "BF16": case "F16": return new Uint16Array(numel);
    case "I32": return new Int32Array(numel);
    case "I64": return new BigInt64Array(numel);
  }
}

/** What a bad argument is, for messages: the class of an object, else its type. */
export function kindOf(x: unknown): string {
  return x === null ? "null" : typeof x === "object" ? (x.constructor?.name ?? "an object") : typeof x;
}

const ARRAY_OF: Record<DType, Function> = {
  F32: Float32Array, BF16: Uint16Array, F16: Uint16Array, I32: Int32Array, I64: BigInt64Array,
};

/** The typed accessor that reads each dtype's data as it is stored. */
const ACCESSOR_OF: Record<DType, "f32" | "u16" | "i32" | "i64"> = { F32: "f32", BF16: "u16", F16: "u16", I32: "i32", I64: "i64" };

export class Tensor {
  constructor(readonly dtype: DType, readonly shape: readonly number[], readonly data: TensorData) {
    if (!Object.hasOwn(ARRAY_OF, dtype)) {
      throw new InputError(`Tensor: dtype must be one of ${Object.keys(ARRAY_OF).join(", ")}, got ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape)) throw new InputError(`Tensor: shape must be an array of dimensions, got ${kindOf(shape)}`);
    if (!(data instanceof ARRAY_OF[dtype])) {
      throw new InputError(`Tensor: ${dtype} data must be a ${ARRAY_OF[dtype].name}, got ${kindOf(data)}`);
    }
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new InputError(`Tensor: invalid shape [${shape.join(",")}]`);
    }
    if (data.length !== shapeNumel(shape)) {
      throw new InputError(`Tensor: shape [${shape.join(",")}] needs ${shapeNumel(shape)} elements, data has ${data.length}`);
    }
  }

  /** The data of an F32 tensor (any other dtype throws, naming it: toFloat32() converts). */
  get f32(): Float32Array {
    return this.stored("f32") as Float32Array;
  }

  /** The 16-bit patterns of a BF16 or F16 tensor. */
  get u16(): Uint16Array {
    return this.stored("u16") as Uint16Array;
  }

  /** The data of an I32 tensor (token ids, expert indices). */
  get i32(): Int32Array {
    return this.stored("i32") as Int32Array;
  }

  /** The data of an I64 tensor. */
  get i64(): BigInt64Array {
    return this.stored("i64") as BigInt64Array;
  }

  private stored(accessor: (typeof ACCESSOR_OF)[DType]): TensorData {
    if (ACCESSOR_OF[this.dtype] !== accessor) {
      throw new M1Error(`Tensor.${accessor}: this tensor [${this.shape.join(", ")}] is ${this.dtype}; read it with .${ACCESSOR_OF[this.dtype]}, or convert it with toFloat32()`);
    }
    return this.data;
  }

  get numel(): number {
    return this.data.length;
  }

  get nbytes(): number {
    return this.data.byteLength;
  }

  /** Shape, dtype, statistics and the first values. */
  [DISPLAY](): MimeBundle {
    return tensorBundle({ shape: this.shape, dtype: this.dtype, values: this.toFloat32() });
  }

  /** Values as float32: F32 data is returned as is (not copied), other dtypes are converted. */
  toFloat32(): Float32Array {
    const d = this.data;
    switch (this.dtype) {
      case "F32": return d as Float32Array;
      case "BF16": case "F16": return floatsInto(this.dtype, d as Uint16Array, new Float32Array(d.length));
      case "I32": return Float32Array.from(d as Int32Array);
      case "I64": return Float32Array.from(d as BigInt64Array, Number);
    }
  }
}

// Scratch views for bit casts between float32 and its 32-bit pattern.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 is the top half of an f32 bit pattern. */
export function bf16ToF32(u: number): number {
  u32[0] = (u & 0xffff) << 16;
  return f32[0];
}

/** Round to nearest, ties to even; NaN stays a (quiet) NaN instead of rounding into Inf. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  return bitsToBf16(u32[0]);
}

function bitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40;
  // Adding 0x7fff plus the lowest kept bit rounds half-way cases towards an even result.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE binary16 → number (subnormals, Inf and NaN included). */
export function f16ToF32(u: number): number {
  const sign = u & 0x8000 ? -1 : 1;
  const exp = (u >> 10) & 0x1f;
  const frac = u & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** 16-bit float data (BF16 or F16) converted into `dst` (same length). */
export function floatsInto(dtype: "BF16" | "F16", src: Uint16Array, dst: Float32Array): Float32Array {
  if (dtype === "F16") {
    for (let i = 0; i < src.length; i++) dst[i] = f16ToF32(src[i]);
    return dst;
  }
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return dst;
}

/** f32 values rounded to BF16 (nearest-even) into `dst` (same length). */
export function f32IntoBf16(src: Float32Array, dst: Uint16Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) dst[i] = bitsToBf16(bits[i]);
  return dst;
}

/** Convert to F32 or BF16 (BF16 by round-to-nearest-even). Returns `t` itself when it already has that dtype. */
export function castTensor(t: Tensor, dtype: "F32" | "BF16"): Tensor {
  if (t.dtype === dtype) return t;
  const asF32 = t.toFloat32();
  return dtype === "F32" ? new Tensor("F32", t.shape, asF32) : new Tensor("BF16", t.shape, f32IntoBf16(asF32, new Uint16Array(asF32.length)));
}
