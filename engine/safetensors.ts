// Reader and writer for the safetensors format: u64 little-endian header length N, N bytes of JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the data section.
// Offsets are relative to the start of the data section. Tensors are read lazily, one at a time.
import fs from "node:fs";
import path from "node:path";
import { CheckpointError } from "./errors.ts";
import * as native from "../native/index.ts";
import { DTYPE_BYTES, Tensor, allocData, shapeNumel, type DType, type TensorData } from "./tensor.ts";

export interface SafetensorsEntry { dtype: DType; shape: number[]; begin: number; end: number }

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const SUPPORTED = Object.keys(DTYPE_BYTES) as DType[];
const READ_CHUNK = 1 << 30; // fs.readSync rejects lengths of 2 GiB and more

export class SafetensorsFile {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly dataStart: number,
    private readonly entries: Map<string, SafetensorsEntry>,
    private readonly meta: Record<string, string>,
  ) {
    this.fd = fd;
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      throw new CheckpointError(`${file}: cannot open safetensors file (${(e as Error).message})`, { cause: e });
    }
    try {
      const { dataStart, entries, meta } = parseHeader(file, fd);
      return new SafetensorsFile(file, fd, dataStart, entries, meta);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(`${this.path}: no tensor "${name}"`);
    return e;
  }

  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  read(name: string): Tensor {
    const e = this.info(name);
    return this.readContiguous(name, 0, e.shape);
  }

  /** Rows [rowStart, rowEnd) of dim 0, e.g. one expert of a stacked [E, ...] tensor. */
  readRows(name: string, rowStart: number, rowEnd: number): Tensor {
    const e = this.info(name);
    const rows = e.shape[0] ?? 1;
    if (!(Number.isInteger(rowStart) && Number.isInteger(rowEnd) && 0 <= rowStart && rowStart <= rowEnd && rowEnd <= rows)) {
      throw new CheckpointError(`${this.path}: rows [${rowStart}, ${rowEnd}) out of range for tensor "${name}" with ${rows} rows`);
    }
    const rest = e.shape.slice(1);
    return this.readContiguous(name, rowStart * shapeNumel(rest), [rowEnd - rowStart, ...rest]);
  }

  /** `shape`'s worth of elements stored contiguously from element `offset` of tensor `name` (row-major). */
  readContiguous(name: string, offset: number, shape: number[]): Tensor {
    const data = readBuffer(this.info(name).dtype, shapeNumel(shape));
    this.readContiguousInto(name, offset, data);
    return new Tensor(this.info(name).dtype, shape, data);
  }

  /** Where element `offset` of tensor `name` lies in the file (bytes from its start). */
  byteOffset(name: string, offset = 0): number {
    const e = this.info(name);
    return this.dataStart + e.begin + offset * DTYPE_BYTES[e.dtype];
  }

  /** Fills `dst` (of the tensor's dtype) with the elements stored from element `offset` on: no allocation. */
  readContiguousInto(name: string, offset: number, dst: TensorData): void {
    const e = this.info(name);
    const size = DTYPE_BYTES[e.dtype];
    if (!(dst instanceof allocData(e.dtype, 0).constructor)) {
      throw new CheckpointError(`${this.path}: tensor "${name}" is ${e.dtype}; cannot read it into a ${dst.constructor.name}`);
    }
    if (offset < 0 || (offset + dst.length) * size > e.end - e.begin) {
      throw new CheckpointError(`${this.path}: elements [${offset}, ${offset + dst.length}) out of range for tensor "${name}" [${e.shape.join(",")}]`);
    }
    this.readInto(name, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), this.dataStart + e.begin + offset * size);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private readInto(name: string, dst: Uint8Array, position: number): void {
    if (this.fd === null) throw new CheckpointError(`${this.path}: file is closed (reading tensor "${name}")`);
    let done = 0;
    while (done < dst.length) {
      const n = fs.readSync(this.fd, dst, done, Math.min(READ_CHUNK, dst.length - done), position + done);
      if (n === 0) throw new CheckpointError(`${this.path}: unexpected end of file while reading tensor "${name}"`);
      done += n;
    }
  }
}

function parseHeader(file: string, fd: number) {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) {
    throw new CheckpointError(`${file}: truncated safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`);
  }
  const prefix = Buffer.alloc(8);
  fs.readSync(fd, prefix, 0, 8, 0);
  const headerLen = Number(prefix.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileSize) {
    throw new CheckpointError(
      `${file}: header length ${headerLen} is absurd (file is ${fileSize} bytes, limit ${MAX_HEADER_BYTES}); truncated or not a safetensors file`);
  }
  const raw = Buffer.alloc(headerLen);
  fs.readSync(fd, raw, 0, headerLen, 8);
  let header: unknown;
  try {
    header = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw new CheckpointError(`${file}: header is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObject(header)) throw new CheckpointError(`${file}: header is not a JSON object`);

  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let meta: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      meta = parseMetadata(file, value);
      continue;
    }
    entries.set(name, parseEntry(file, name, value, dataSize));
  }
  checkOverlaps(file, entries);
  return { dataStart, entries, meta };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw new CheckpointError(`${file}: "__metadata__" must be an object of strings`);
  }
  return value as Record<string, string>;
}

function parseEntry(file: string, name: string, value: unknown, dataSize: number): SafetensorsEntry {
  const where = `${file}: tensor "${name}"`;
  if (!isObject(value) || !("dtype" in value) || !("shape" in value) || !("data_offsets" in value)) {
    throw new CheckpointError(`${where}: header entry needs "dtype", "shape" and "data_offsets"`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string" || !(SUPPORTED as string[]).includes(dtype)) {
    throw new CheckpointError(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${SUPPORTED.join(", ")})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new CheckpointError(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new CheckpointError(`${where}: data_offsets ${JSON.stringify(offsets)} must be two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new CheckpointError(`${where}: data_offsets begin ${begin} > end ${end}`);
  if (end > dataSize) {
    throw new CheckpointError(
      `${where}: data_offsets end ${end} lies beyond the data section of ${dataSize} bytes (file truncated?)`);
  }
  const expected = shapeNumel(shape) * DTYPE_BYTES[dtype as DType];
  if (end - begin !== expected) {
    throw new CheckpointError(
      `${where}: holds ${end - begin} bytes but ${dtype} [${shape.join(",")}] needs ${expected}`);
  }
  return { dtype: dtype as DType, shape: shape as number[], begin, end };
}

function checkOverlaps(file: string, entries: Map<string, SafetensorsEntry>): void {
  const sorted = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1];
    const [name, e] = sorted[i];
    if (e.begin < prev.end) {
      throw new CheckpointError(
        `${file}: tensors "${prevName}" [${prev.begin}, ${prev.end}) and "${name}" [${e.begin}, ${e.end}) overlap`);
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Write tensors in the given order; the header is space-padded to a multiple of 8 bytes. Atomic via rename. */
export function writeSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + t.nbytes] };
    offset += t.nbytes;
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, prefix);
      fs.writeSync(fd, json);
      for (const t of Object.values(tensors)) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new CheckpointError(`${file}: cannot write safetensors file (${(e as Error).message})`, { cause: e });
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) {
    done += fs.writeSync(fd, bytes, done, Math.min(READ_CHUNK, bytes.length - done));
  }
}

/** Memory for tensor data read from disk: floating-point tensors (weights) go to cache-line aligned memory, from
 *  which the decode GEMVs stream a quarter faster than from V8's 16-byte aligned arrays (benchmarks/perf). */
function readBuffer(dtype: DType, numel: number): TensorData {
  if (dtype === "F32") return new Float32Array(native.alignedBuffer(numel * 4));
  if (dtype === "BF16" || dtype === "F16") return new Uint16Array(native.alignedBuffer(numel * 2));
  return allocData(dtype, numel);
}
