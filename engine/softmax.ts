/** softmax of one row in double precision, max-subtracted; -Infinity entries (masked) become 0. */
export function softmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  const p = Float64Array.from(row, (x) => Math.exp(x - max));
  let z = 0;
  for (const x of p) z += x;
  for (let i = 0; i < p.length; i++) p[i] /= z;
  return p;
}

/** log softmax(row)[index] in double precision: the log-probability of one token under a row of logits. */
export function logProbability(row: ArrayLike<number>, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  return row[index] - max - Math.log(z);
}

/** log Σ exp(row) in f64, and the row's argmax (first of equal maxima). */
export function logSumExp(row: Float32Array): { logZ: number; argmax: number } {
  let argmax = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[argmax]) argmax = i;
  let z = 0;
  for (const x of row) z += Math.exp(x - row[argmax]);
  return { logZ: row[argmax] + Math.log(z), argmax };
}
