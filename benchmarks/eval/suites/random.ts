// Seeded choices for the generated suites (the engine's xoshiro128** stream), so a suite's items are a
// function of its options alone.
import { Rng } from "../../../engine/sampling.ts";

export class Picker {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rng.next() * (hi - lo + 1));
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(0, list.length - 1)];
  }

  /** a string of `n` characters from `alphabet` */
  chars(n: number, alphabet: string): string {
    return Array.from({ length: n }, () => alphabet[this.int(0, alphabet.length - 1)]).join("");
  }

  /** `k` distinct elements of `list` in random order */
  sample<T>(list: readonly T[], k: number): T[] {
    const pool = [...list];
    for (let i = pool.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [pool[i], pool[j]] = [pool[j], pool[i]];
    }
    return pool.slice(0, k);
  }
}

/** The approximate token count of English text used to size generated contexts: 4 characters per token. */
export const approxTokens = (text: string): number => Math.ceil(text.length / 4);
