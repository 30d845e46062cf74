/** Groups items (prompts, patched runs) into packed passes of at most `maxRows` rows each (an item larger than that
 *  gets a pass of its own), in order. */
export function passes<T>(items: readonly T[], rows: (item: T) => number, maxRows: number): T[][] {
  const out: T[][] = [];
  let used = 0;
  for (const item of items) {
    const r = rows(item);
    if (out.length === 0 || used + r > maxRows) {
      out.push([]);
      used = 0;
    }
    out.at(-1)!.push(item);
    used += r;
  }
  return out;
}
