// Python's difflib.SequenceMatcher(None, a, b).ratio() on strings, element for element (code points), including
// the "autojunk" heuristic: when b has at least 200 elements, elements occurring more than len(b)/100 + 1 times
// are "popular" and cannot start a match (they can still extend one). OpenAI-MRCR grades with this ratio.

interface Match { i: number; j: number; size: number }

export function sequenceRatio(aText: string, bText: string): number {
  const a = Array.from(aText);
  const b = Array.from(bText);
  const total = a.length + b.length;
  if (total === 0) return 1;
  const b2j = indexB(b);
  let matches = 0;
  const queue: [number, number, number, number][] = [[0, a.length, 0, b.length]];
  while (queue.length > 0) {
    const [alo, ahi, blo, bhi] = queue.pop()!;
    const { i, j, size } = longestMatch(a, b, b2j, alo, ahi, blo, bhi);
    if (size === 0) continue;
    matches += size;
    if (alo < i && blo < j) queue.push([alo, i, blo, j]);
    if (i + size < ahi && j + size < bhi) queue.push([i + size, ahi, j + size, bhi]);
  }
  return (2 * matches) / total;
}

/** element → its positions in b (increasing), popular elements removed */
function indexB(b: string[]): Map<string, number[]> {
  const b2j = new Map<string, number[]>();
  b.forEach((x, j) => {
    const list = b2j.get(x);
    if (list) list.push(j);
    else b2j.set(x, [j]);
  });
  if (b.length >= 200) {
    const limit = Math.floor(b.length / 100) + 1;
    for (const [x, list] of [...b2j]) if (list.length > limit) b2j.delete(x);
  }
  return b2j;
}

/** difflib's find_longest_match with no junk: the earliest longest block, then extended over equal neighbours. */
function longestMatch(a: string[], b: string[], b2j: Map<string, number[]>, alo: number, ahi: number, blo: number, bhi: number): Match {
  let besti = alo, bestj = blo, best = 0;
  let j2len = new Map<number, number>();
  for (let i = alo; i < ahi; i++) {
    const next = new Map<number, number>();
    for (const j of b2j.get(a[i]) ?? []) {
      if (j < blo) continue;
      if (j >= bhi) break;
      const k = (j2len.get(j - 1) ?? 0) + 1;
      next.set(j, k);
      if (k > best) {
        besti = i - k + 1;
        bestj = j - k + 1;
        best = k;
      }
    }
    j2len = next;
  }
  while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) {
    besti--;
    bestj--;
    best++;
  }
  while (besti + best < ahi && bestj + best < bhi && a[besti + best] === b[bestj + best]) best++;
  return { i: besti, j: bestj, size: best };
}
