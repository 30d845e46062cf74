// The decoded text of a growing list of token ids, kept one token at a time in time that does not grow with the
// list: each token's text is what decoding it after the few tokens before it adds (those give it the context a
// decoder looks at: a byte-level character's other bytes, a joining space, the clean-up of a space before
// punctuation). A long generation (M1 writes up to 80K tokens) is then not decoded again in full at every token,
// which made generate, stop strings and m1 serve's streams quadratic in the length of the output.
import type { Tokenizer } from "./tokenizer.ts";

/** Where the first of `strings` to occur in `text` starts, or -1. */
export function firstIndexOf(text: string, strings: readonly string[]): number {
  let at = -1;
  for (const s of strings) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Tokens before the unsettled ones that their text is decoded after. */
const CONTEXT = 8;
/** Tokens that may wait for the rest of a character; past this many, the text settles with its U+FFFD, as the
 *  full decode shows bytes that never form a character. */
const MAX_PENDING = 8;

export class IncrementalDecoder {
  private readonly ids: number[] = [];
  /** ids[0..settled) have their text in `pieces` */
  private settled = 0;
  private pieces: string[] = [];
  private chars = 0;
  private recentText = "";

  /** characters of the text before the newest piece that `recent` holds: the longest stop string's (a stop string
   *  that the newest piece completes starts within them; a caller holding back what may still become one needs one
   *  less) */
  private readonly keep: number;

  /** stopStrings: the strings `newStopAt` watches for. */
  constructor(private readonly tokenizer: Tokenizer, private readonly stopStrings: readonly string[] = []) {
    this.keep = Math.max(0, ...stopStrings.map((s) => s.length));
  }

  /** Appends a token; returns the text it completes, "" while the text ends inside a character (those tokens' text
   *  comes with the token that completes it). */
  push(id: number): string {
    this.ids.push(id);
    const context = this.ids.slice(Math.max(0, this.settled - CONTEXT), this.settled);
    const pending = this.ids.length - this.settled;
    const before = this.decode(context);
    const after = this.decode(this.ids.slice(this.settled - context.length));
    if (after.endsWith("\uFFFD") && pending < MAX_PENDING) return "";
    this.settled = this.ids.length;
    if (after.startsWith(before)) {
      const piece = after.slice(before.length);
      this.pieces.push(piece);
      this.chars += piece.length;
      this.recentText = (this.recentText + piece).slice(-(this.keep + piece.length));
      return piece;
    }
    // a decoder that changes the text before a token once the token follows (a clean-up of spaces; none of M1's):
    // the whole text decoded again, and what it adds past the old length
    const full = this.decode(this.ids);
    const piece = full.slice(this.chars);
    this.pieces = [full];
    this.chars = full.length;
    this.recentText = full.slice(-(this.keep + piece.length));
    return piece;
  }

  /** The text of the settled tokens (all but those waiting for the rest of a character). */
  get text(): string {
    if (this.pieces.length > 1) this.pieces = [this.pieces.join("")];
    return this.pieces[0] ?? "";
  }

  /** Characters in `text`. */
  get length(): number {
    return this.chars;
  }

  /** The end of `text`: the newest piece and at least `keep` characters before it (or all of them). */
  get recent(): string {
    return this.recentText;
  }

  /** text.slice(from, to) for a range within `recent`, without joining the whole text. */
  slice(from: number, to = this.chars): string {
    const start = this.chars - this.recentText.length;
    return from >= start ? this.recentText.slice(from - start, to - start) : this.text.slice(from, to);
  }

  /** Where the first stop string that the newest piece completes starts in `text`, or -1. */
  newStopAt(): number {
    const at = firstIndexOf(this.recentText, this.stopStrings);
    return at < 0 ? -1 : this.chars - this.recentText.length + at;
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skipUnknown: true });
  }
}
