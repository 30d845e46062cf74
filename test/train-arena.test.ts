// The training pass arena (engine/train/arena.ts): arrays of one pass never share memory, a later pass taking the
// same lengths gets the same memory back (no new allocation), and arrays past a block's end or larger than a block
// still come out whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Arena } from "../engine/train/arena.ts";

const BLOCK = 1 << 22; // floats per block (arena.ts)

function disjoint(arrays: Float32Array[]): boolean {
  const spans = arrays.map((a) => [a.buffer, a.byteOffset, a.byteOffset + a.byteLength] as const);
  return spans.every(([b, lo, hi], i) => spans.every(([b2, lo2, hi2], j) => i === j || b !== b2 || hi <= lo2 || hi2 <= lo));
}

test("arena: one pass's arrays are disjoint, 64-byte aligned and of the lengths asked for", () => {
  const arena = new Arena();
  arena.reset();
  const lengths = [5, 1000, BLOCK - 2000, 3000, 2 * BLOCK + 7, 17, BLOCK];
  const arrays = lengths.map((n) => arena.take(n));
  assert.deepEqual(arrays.map((a) => a.length), lengths);
  assert.ok(disjoint(arrays), "arrays of one pass overlap");
  for (const a of arrays) assert.equal(a.byteOffset % 64, 0);
});

test("arena: a later pass of the same lengths reuses the first pass's memory", () => {
  const arena = new Arena();
  const lengths = [300, BLOCK / 2, BLOCK / 2 + 100, 5 * BLOCK / 4, 64];
  arena.reset();
  const first = lengths.map((n) => arena.take(n));
  first.forEach((a, i) => a.fill(i + 1));
  arena.reset();
  const second = lengths.map((n) => arena.take(n));
  second.forEach((a, i) => {
    assert.equal(a.buffer, first[i].buffer);
    assert.equal(a.byteOffset, first[i].byteOffset);
  });
  // a longer pass keeps what it shares with the first and adds memory beyond it
  arena.reset();
  const longer = [...lengths, BLOCK, 10].map((n) => arena.take(n));
  assert.ok(disjoint(longer));
  assert.equal(longer[0].buffer, first[0].buffer);
});
