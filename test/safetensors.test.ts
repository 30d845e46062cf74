import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { InputError } from "../engine/errors.ts";
import { CheckpointError } from "../engine/errors.ts";
import { SafetensorsFile, writeSafetensors } from "../engine/safetensors.ts";
import { Tensor, bf16ToF32, castTensor, f16ToF32, f32ToBf16 } from "../engine/tensor.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "m1-safetensors-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file with a hand-made header (object or raw string) followed by `dataBytes` zero bytes. */
function rawFile(name: string, header: unknown, dataBytes: number, headerLen?: number): string {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerLen ?? json.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]));
  return file;
}

function rejects(file: string, ...mustMention: (string | RegExp)[]): void {
  assert.throws(() => SafetensorsFile.open(file), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${e}`);
    assert.ok(e.message.includes(file), `message should name the file: ${e.message}`);
    for (const m of mustMention) {
      assert.ok(typeof m === "string" ? e.message.includes(m) : m.test(e.message), `message should mention ${m}: ${e.message}`);
    }
    return true;
  });
}

const f32 = (shape: number[], values: number[]) => new Tensor("F32", shape, Float32Array.from(values));

test("round trip of every dtype, metadata, scalars and empty tensors", () => {
  const tensors = {
    a: f32([2, 3], [1, -2, 3.5, 0, 1e-8, -1e30]),
    b: castTensor(f32([3], [1, 0.1, -65504]), "BF16"),
    c: new Tensor("I32", [2, 2], Int32Array.from([1, -2, 2147483647, -2147483648])),
    d: new Tensor("F16", [2], Uint16Array.from([0x3c00, 0xc000])),
    e: new Tensor("I64", [1], BigInt64Array.from([-5n])),
    scalar: f32([], [7]),
    empty: f32([0, 4], []),
  };
  const file = path.join(tmp, "roundtrip.safetensors");
  writeSafetensors(file, tensors, { format: "pt", note: "x" });
  assert.equal(Number(fs.readFileSync(file).readBigUInt64LE(0)) % 8, 0, "header is padded to 8 bytes");
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes(".tmp")), [], "no temp file left behind");

  const st = SafetensorsFile.open(file);
  assert.deepEqual(st.names(), Object.keys(tensors));
  assert.deepEqual(st.metadata(), { format: "pt", note: "x" });
  for (const [name, t] of Object.entries(tensors)) {
    const r = st.read(name);
    assert.equal(r.dtype, t.dtype);
    assert.deepEqual(r.shape, t.shape);
    assert.deepEqual(r.data, t.data);
    assert.equal(r.data.byteOffset % r.data.BYTES_PER_ELEMENT, 0);
  }
  const c = st.info("c");
  assert.deepEqual([c.dtype, c.shape, c.end - c.begin], ["I32", [2, 2], 16]);
  assert.deepEqual([...st.readRows("a", 1, 2).data], [0, 1e-8, -1e30].map(Math.fround));
  assert.deepEqual(st.readRows("a", 1, 2).shape, [1, 3]);
  assert.throws(() => st.readRows("a", 1, 3), /rows \[1, 3\) out of range for tensor "a"/);
  assert.throws(() => st.read("nope"), (e: unknown) => e instanceof CheckpointError && /"nope"/.test(e.message));
  st.close();
  assert.throws(() => st.read("a"), /closed/);
});

test("typed accessors return the stored array of their dtype and name the dtype otherwise", () => {
  const f = new Tensor("F32", [2], Float32Array.of(1, 2));
  const b = new Tensor("BF16", [1, 2], Uint16Array.of(0x3f80, 0x4000));
  const i = new Tensor("I32", [3], Int32Array.of(5, 6, 7));
  const l = new Tensor("I64", [1], BigInt64Array.of(9n));
  assert.equal(f.f32, f.data);
  assert.equal(b.u16, b.data);
  assert.equal(new Tensor("F16", [1], Uint16Array.of(0x3c00)).u16[0], 0x3c00);
  assert.equal(i.i32, i.data);
  assert.equal(l.i64, l.data);
  assert.throws(() => b.f32, { name: "M1Error", message: "Tensor.f32: this tensor [1, 2] is BF16; read it with .u16, or convert it with toFloat32()" });
  assert.throws(() => i.f32, /is I32; read it with \.i32/);
  assert.throws(() => f.i32, /Tensor\.i32: this tensor \[2\] is F32; read it with \.f32/);
  assert.throws(() => f.u16, /is F32/);
  assert.throws(() => i.i64, /is I32/);
});

test("bf16 / f16 conversions", () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(f32ToBf16(-2), 0xc000);
  // 1 + 2^-8 is exactly between two bf16 values: ties go to the even mantissa (down); 1 + 3·2^-8 rounds up.
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80);
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  assert.equal(bf16ToF32(f32ToBf16(Infinity)), Infinity);
  assert.equal(bf16ToF32(f32ToBf16(3.4e38)), Infinity, "overflow past the largest bf16 rounds to Inf");
  assert.equal(f16ToF32(0x3c00), 1);
  assert.equal(f16ToF32(0xc000), -2);
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f16ToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));

  const t = f32([4], [1, -0.1, 3.14159, 1e-3]);
  const b = castTensor(t, "BF16");
  assert.equal(b.dtype, "BF16");
  assert.equal(b.nbytes, 8);
  const back = b.toFloat32();
  t.toFloat32().forEach((x, i) => assert.ok(Math.abs(back[i] - x) <= Math.abs(x) * 2 ** -8, `${x} → ${back[i]}`));
  assert.equal(castTensor(t, "F32"), t);
  assert.deepEqual([...new Tensor("I32", [2], Int32Array.from([3, -4])).toFloat32()], [3, -4]);
  assert.deepEqual([...new Tensor("F16", [1], Uint16Array.from([0x3c00])).toFloat32()], [1]);
  assert.throws(() => new Tensor("F32", [3], new Float32Array(2)), /needs 3 elements/);
  assert.throws(() => new Tensor("BF16", [2], new Float32Array(2)), /must be a Uint16Array/);
});

test("Tensor names the argument that is wrong: dtype, shape, data", () => {
  const bad = (f: () => unknown, message: RegExp) => assert.throws(f, (e: Error) => e instanceof InputError && message.test(e.message));
  bad(() => new Tensor("f32" as never, [2], new Float32Array(2)), /Tensor: dtype must be one of F32, BF16, F16, I32, I64, got "f32"/);
  bad(() => new Tensor("F32", 2 as never, new Float32Array(2)), /Tensor: shape must be an array of dimensions, got number/);
  bad(() => new Tensor("F32", [2], null as never), /Tensor: F32 data must be a Float32Array, got null/);
  bad(() => new Tensor("F32", [2], [1, 2] as never), /Tensor: F32 data must be a Float32Array, got Array/);
});

const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

test("truncated files", () => {
  const tiny = path.join(tmp, "tiny.safetensors");
  fs.writeFileSync(tiny, Buffer.from([1, 2, 3]));
  rejects(tiny, "truncated", "3 bytes");
  rejects(rawFile("shortheader.safetensors", { x: entry("F32", [1], 0, 4) }, 4, 5000), "header length 5000", /file is \d+ bytes/);
  rejects(rawFile("huge.safetensors", {}, 0, 2 ** 40), "header length 1099511627776");
  // Header intact, data cut short: the tensor that no longer fits is named, with both sizes.
  rejects(rawFile("cut.safetensors", { w: entry("F32", [4, 4], 0, 64) }, 40), 'tensor "w"', "beyond the data section of 40 bytes", "truncated");
});

test("corrupt headers", () => {
  rejects(rawFile("badjson.safetensors", '{"x": {"dtype": "F32",', 0), "not valid JSON");
  rejects(rawFile("array.safetensors", "[1, 2]", 0), "not a JSON object");
  rejects(rawFile("nodtype.safetensors", { w: { shape: [1], data_offsets: [0, 4] } }, 4), 'tensor "w"', '"dtype"');
  rejects(rawFile("f64.safetensors", { w: entry("F64", [1], 0, 8) }, 8), 'tensor "w"', '"F64"', "F32, BF16, F16, I32, I64");
  rejects(rawFile("shape.safetensors", { w: entry("F32", [-1], 0, 4) }, 4), 'tensor "w"', "shape");
  rejects(rawFile("fraction.safetensors", { w: entry("F32", [1], 0.5, 4) }, 4), 'tensor "w"', "data_offsets");
  rejects(rawFile("meta.safetensors", { __metadata__: { a: 1 } }, 0), "__metadata__");
});

test("offsets out of range, reversed, mis-sized and overlapping", () => {
  rejects(rawFile("range.safetensors", { w: entry("F32", [2], 4, 12) }, 8), 'tensor "w"', "end 12", "8 bytes");
  rejects(rawFile("reversed.safetensors", { w: entry("F32", [0], 8, 4) }, 8), 'tensor "w"', "begin 8 > end 4");
  rejects(rawFile("size.safetensors", { w: entry("BF16", [2, 3], 0, 24) }, 24), 'tensor "w"', "holds 24 bytes", "needs 12");
  rejects(rawFile("overlap.safetensors", { a: entry("F32", [4], 0, 16), b: entry("F32", [2], 8, 16) }, 16),
    '"a"', '"b"', "overlap");
});
