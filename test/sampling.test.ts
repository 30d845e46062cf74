import { test } from "node:test";
import assert from "node:assert/strict";
import { descendingOrder, Rng, Sampler, type SamplingOptions } from "../engine/sampling.ts";
import * as native from "../native/index.ts";

/** The order Sampler takes its candidates in, by definition: a stable sort with this comparator. */
const byComparator = (logits: Float32Array) => Int32Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);

/** Sampler.pick as specified, in JavaScript: greedy the first largest logit; else candidates by byComparator, top-k,
 *  probabilities at the temperature summed in that order, the top-p nucleus, a draw from `rng` walked down it. */
function reference(logits: Float32Array, rng: Rng, { temperature = 1, topK, topP = 1, greedy }: SamplingOptions): number {
  if (greedy || temperature === 0) return logits.reduce((best, l, i) => (l > logits[best] ? i : best), 0);
  const order = Array.from(byComparator(logits)).slice(0, topK ?? logits.length);
  const probs = order.map((id) => Math.exp((logits[id] - logits[order[0]]) / temperature));
  const sum = probs.reduce((a, b) => a + b, 0);
  let cumulative = 0;
  const nucleus = topP < 1 ? probs.findIndex((p) => (cumulative += p / sum) >= topP) + 1 || probs.length : probs.length;
  const kept = probs.slice(0, nucleus);
  let r = rng.next() * kept.reduce((a, b) => a + b, 0);
  const i = kept.findIndex((p) => (r -= p) < 0);
  return order[i < 0 ? nucleus - 1 : i];
}

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
    Array.from({ length: 1003 }, (_, i) => (i < 500 ? 2.5 : Math.round((rng.next() - 0.5) * 80) / 8)), // a run of ties across the sort's four parts, three left over
    Array.from({ length: 20000 }, () => Math.round((rng.next() - 0.5) * 4000) / 64), // a large vocabulary, ties in every digit
    Array.from({ length: 40000 }, () => Math.round((rng.next() - 0.5) * 4000) / 64), // past 2^15: 16-bit digits
    Array.from({ length: 3000 }, () => 1 + Math.floor(rng.next() * 8) / 8), // the low digits the same in every logit
    Array.from({ length: 50000 }, () => -2 - Math.floor(rng.next() * 64) / 64),
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
  const data = new Rng(3);
  const uniform = (n: number, width: number) => Float32Array.from({ length: n }, () => (data.next() - 0.5) * width);
  /** rows of logits by name, each made afresh per step */
  const rows: [string, () => Float32Array, number][] = [
    ["32 ids with ties", () => Float32Array.from({ length: 32 }, () => Math.round((data.next() - 0.5) * 24) / 2), 60],
    ["1 id", () => uniform(1, 10), 5],
    ["all equal", () => new Float32Array(50).fill(0.25), 5],
    ["+inf among them", () => Float32Array.from(uniform(40, 8), (l, i) => (i % 13 === 5 ? Infinity : l)), 5],
    ["-inf among them", () => Float32Array.from(uniform(40, 8), (l, i) => (i % 3 === 1 ? -Infinity : l)), 5],
    ["all -inf", () => new Float32Array(30).fill(-Infinity), 3],
    ["NaN among them", () => Float32Array.from(uniform(40, 8), (l, i) => (i % 11 === 4 ? Number.NaN : l)), 5],
    ["16384 ids", () => uniform(16384, 8), 3],
    ["200064 ids", () => uniform(200064, 8), 1],
  ];
  const settings: SamplingOptions[] = [
    { temperature: 1, topP: 0.95 }, { temperature: 0.7, topK: 5 }, { temperature: 1.3 }, { temperature: 1, topK: 3, topP: 0.5 },
    { topK: 1 }, { topK: 300000 }, { temperature: 1e-6, topP: 0.9 }, { temperature: 5e-324 }, { temperature: 1e6, topP: 0.3 },
    { topP: 1e-12 }, { temperature: 0 }, { greedy: true, temperature: 0.5 },
  ];
  for (const [name, row, steps] of rows) {
    settings.forEach((options, s) => {
      const seed = 11 + s;
      const sampler = new Sampler({ ...options, seed });
      const rng = new Rng(seed);
      for (let step = 0; step < (name === "200064 ids" && s > 3 ? 0 : steps); step++) {
        const logits = row();
        assert.equal(sampler.pick(logits), reference(logits, rng, options), `${name}, ${JSON.stringify(options)}, step ${step}`);
      }
    });
  }
});

test("Sampler.pickRows: a batch's picks in one call equal each sampler's own pick, draws included", () => {
  const data = new Rng(5);
  const settings: SamplingOptions[] = [
    { temperature: 1, topP: 0.95 }, { temperature: 0 }, { temperature: 0.7, topK: 5 }, { greedy: true }, { temperature: 1.3 },
    { topK: 1 }, { temperature: 2, topK: 40, topP: 0.8 }, { topP: 0.5 }, { temperature: 1e-3 },
  ];
  for (const vocab of [64, 16384]) {
    const batch = settings.map((o, i) => new Sampler({ ...o, seed: 100 + i }));
    const alone = settings.map((o, i) => new Sampler({ ...o, seed: 100 + i }));
    for (let step = 0; step < (vocab === 64 ? 40 : 3); step++) {
      const rows = settings.map((_, i) =>
        Float32Array.from({ length: vocab }, (_, j) => ((step + i) % 4 === 3 && j === 9 ? Number.NaN : Math.round((data.next() - 0.5) * 32) / 4)));
      assert.deepEqual(Array.from(Sampler.pickRows(batch, rows)), rows.map((r, i) => alone[i].pick(r)), `vocabulary ${vocab}, step ${step}`);
    }
  }
  assert.deepEqual(Sampler.pickRows([], []), new Int32Array(0));
  assert.throws(() => Sampler.pickRows([new Sampler()], []), /pickRows: 1 samplers for 0 rows/);
});

test("sampleRow and sampleRows name each bad argument (and row)", () => {
  const row = Float32Array.of(1, 2, 3, 4);
  const ok = [row, 1, 0, 1, 0.5] as const;
  const bad: [unknown[], RegExp][] = [
    [[[1, 2], 1, 0, 1, 0.5], /^TypeError: sampleRow: logits must be a Float32Array$/],
    [[new Float32Array(0), 1, 0, 1, 0.5], /sampleRow: logits is empty/],
    [[row, Number.NaN, 0, 1, 0.5], /sampleRow: temperature must be a finite number >= 0, got NaN$/],
    [[row, -1, 0, 1, 0.5], /sampleRow: temperature must be a finite number >= 0/],
    [[row, Infinity, 0, 1, 0.5], /sampleRow: temperature must be a finite number >= 0, got Infinity$/],
    [[row, 1, -1, 1, 0.5], /sampleRow: topK must be an integer >= 0/],
    [[row, 1, 1.5, 1, 0.5], /sampleRow: topK must be an integer >= 0 \(0: every candidate\), got 1.5$/],
    [[row, 1, 0, 0, 0.5], /sampleRow: topP must be in \(0, 1\], got 0/],
    [[row, 1, 0, 1.5, 0.5], /sampleRow: topP must be in \(0, 1\]/],
    [[row, 1, 0, Number.NaN, 0.5], /sampleRow: topP must be in \(0, 1\]/],
    [[row, 1, 0, 1, 1], /sampleRow: uniform must be in \[0, 1\), got 1$/],
    [[row, 1, 0, 1, -0.25], /sampleRow: uniform must be in \[0, 1\), got -0.25$/],
    [[row, 1, 0, 1, "0.5"], /^TypeError: sampleRow: uniform must be a number$/],
    [[...ok, new Int32Array(3)], /sampleRow: order has 3 elements, expected logits.length = 4/],
    [[...ok, Int32Array.of(0, 9, 1, 2)], /sampleRow: order\[1\] = 9 is not an index of logits \[0, 4\)/],
  ];
  const sampleRow = native.sampleRow as (...args: unknown[]) => number;
  assert.equal(sampleRow(...ok), native.sampleRow(row, 1, 0, 1, 0.5));
  for (const [args, message] of bad) assert.throws(() => sampleRow(...args), message, String(args.slice(1)));

  const f64 = (...x: number[]) => Float64Array.from(x);
  const good = () => [[row, row], f64(1, 1), Int32Array.of(0, 0), f64(1, 1), f64(0.5, 0.5)];
  const with_ = (i: number, v: unknown) => Object.assign(good(), { [i]: v });
  const badRows: [unknown[], RegExp][] = [
    [with_(0, row), /^TypeError: sampleRows: rows must be an array of Float32Arrays$/],
    [with_(0, [row, new Float64Array(4)]), /^TypeError: sampleRows: rows\[1\] must be a Float32Array$/],
    [with_(0, [row, new Float32Array(3)]), /sampleRows: rows\[1\] has 3 elements, expected rows\[0\].length = 4/],
    [with_(0, [new Float32Array(0), new Float32Array(0)]), /sampleRows: rows\[0\] is empty/],
    [with_(1, f64(1)), /sampleRows: temperature has 1 elements, expected rows.length = 2/],
    [with_(1, Float32Array.of(1, 1)), /^TypeError: sampleRows: temperature must be a Float64Array$/],
    [with_(1, f64(1, Infinity)), /sampleRows: temperature\[1\] must be a finite number >= 0/],
    [with_(2, Int32Array.of(0, -3)), /sampleRows: topK\[1\] must be an integer >= 0/],
    [with_(2, f64(0, 0)), /^TypeError: sampleRows: topK must be an Int32Array$/],
    [with_(3, f64(0, 1)), /sampleRows: topP\[0\] must be in \(0, 1\]/],
    [with_(4, f64(0.5, 1)), /sampleRows: uniform\[1\] must be in \[0, 1\)/],
    [with_(4, f64(0.5)), /sampleRows: uniform has 1 elements, expected rows.length = 2/],
  ];
  const sampleRows = native.sampleRows as (...args: unknown[]) => Int32Array;
  assert.deepEqual(sampleRows(...good()), Int32Array.of(sampleRow(...ok), sampleRow(...ok)));
  for (const [args, message] of badRows) assert.throws(() => sampleRows(...args), message);
});

test("a huge row's pick leaves no scratch behind on its thread (its 16 bytes per id are freed when it ends)", () => {
  const row = new Float32Array(30_000_000).fill(0.5); // 480 MB of scratch; equal logits sort in no pass
  row[12345] = 3;
  const before = process.memoryUsage().rss;
  assert.ok(native.sampleRow(row, 1, 0, 0.9, 0.5) >= 0);
  assert.ok(descendingOrder(row.subarray(0, 10_000_000))[0] === 12345);
  const kept = process.memoryUsage().rss - before;
  // (AddressSanitizer's allocator holds freed memory in quarantine by design: there the picks only run)
  if (!process.env.LD_PRELOAD?.includes("libasan")) assert.ok(kept < 100e6, `${(kept / 1e6).toFixed(0)} MB kept after the picks`);
});
