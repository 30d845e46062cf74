import { test } from "node:test";
import assert from "node:assert/strict";
import { descendingOrder, Rng, Sampler } from "../engine/sampling.ts";

/** The order Sampler takes its candidates in, by definition: a stable sort with this comparator. */
const byComparator = (logits: Float32Array) => Int32Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);

test("descendingOrder equals the comparator sort: ties, signed zeros, infinities, subnormals, NaN, a subarray", () => {
  const rng = new Rng(7);
  const cases: number[][] = [
    [1, 3, 2, 3, -1, 3],
    [0, -0, 0, -0, 1e-45, -1e-45, -0],
    [Infinity, -Infinity, 5, Infinity, -Infinity, -5, 0],
    [Number.NaN, 1, Number.NaN, 2, 0],
    [-3.5, -3.5, -2.25, -1e30, 1e30, 3.4028234663852886e38, -3.4028234663852886e38],
    Array.from({ length: 1000 }, () => Math.round((rng.next() - 0.5) * 40) / 4), // many ties
    Array.from({ length: 333 }, () => (rng.next() - 0.5) * 1e6),
    Array.from({ length: 20000 }, () => Math.round((rng.next() - 0.5) * 4000) / 64), // a large vocabulary, ties in every digit
  ];
  for (const c of cases) {
    const logits = Float32Array.from(c);
    assert.deepEqual(descendingOrder(logits), byComparator(logits), `logits ${c.slice(0, 8)}`);
  }
  const whole = Float32Array.from([9, 1, 4, 4, 2, 8]);
  assert.deepEqual(descendingOrder(whole.subarray(1, 5)), Int32Array.from([1, 2, 3, 0]));
  assert.throws(() => descendingOrder(whole, new Int32Array(5)), /order has 5 elements, expected logits.length = 6/);
});

test("Sampler.pick: the reference sampling (comparator order, top-k, top-p, temperature) token for token", () => {
  /** pick as specified: candidates by byComparator, top-k, probabilities at the temperature, the top-p nucleus */
  const reference = (logits: Float32Array, rng: Rng, temperature: number, topK: number | undefined, topP: number) => {
    const order = Array.from(byComparator(logits)).slice(0, topK ?? logits.length);
    const probs = order.map((id) => Math.exp((logits[id] - logits[order[0]]) / temperature));
    const sum = probs.reduce((a, b) => a + b, 0);
    let cumulative = 0;
    const nucleus = topP < 1 ? probs.findIndex((p) => (cumulative += p / sum) >= topP) + 1 || probs.length : probs.length;
    const kept = probs.slice(0, nucleus);
    let r = rng.next() * kept.reduce((a, b) => a + b, 0);
    const i = kept.findIndex((p) => (r -= p) < 0);
    return order[i < 0 ? nucleus - 1 : i];
  };
  const data = new Rng(3);
  for (const [temperature, topK, topP] of [[1, undefined, 0.95], [0.7, 5, 1], [1.3, undefined, 1], [1, 3, 0.5]] as const) {
    const sampler = new Sampler({ temperature, topK, topP, seed: 11 });
    const rng = new Rng(11);
    for (let step = 0; step < 300; step++) {
      const logits = Float32Array.from({ length: 32 }, () => Math.round((data.next() - 0.5) * 24) / 2);
      assert.equal(sampler.pick(logits), reference(logits, rng, temperature, topK, topP), `T=${temperature} k=${topK} p=${topP} step ${step}`);
    }
  }
});
