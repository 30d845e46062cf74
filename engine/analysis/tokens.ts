/** Token labels for plots and tables, and the window of positions a plot shows. */
import type { Model } from "../model.ts";
import { InputError } from "../errors.ts";

/** A token's text: decoded when the checkpoint has a tokenizer, else (or for an id without a token) "#id" / the id. */
export function tokenText(model: Model, id: number): string {
  const tok = model.tokenizer;
  return tok ? tok.decode([id], { skipUnknown: true }) || `#${id}` : String(id);
}

/** A single token given as its id or its text (which must be exactly one token), checked against the vocabulary. */
export function tokenId(model: Model, t: number | string): number {
  const vocab = model.config.vocabSize;
  if (typeof t === "number") {
    if (!(Number.isInteger(t) && t >= 0 && t < vocab)) throw new InputError(`target token id ${t} is outside the vocabulary [0, ${vocab})`);
    return t;
  }
  const tok = model.tokenizer;
  if (!tok) throw new InputError(`the checkpoint has no tokenizer: give the target token "${t}" as an id`);
  const ids = tok.encode(t, { addSpecialTokens: false });
  if (ids.length !== 1) throw new InputError(`target "${t}" is ${ids.length} tokens, not one`);
  return ids[0];
}

/** "i:text" per token (plotly merges equal category labels, so the position is part of the label). */
export function tokenLabels(model: Model, ids: readonly number[]): string[] {
  return ids.map((id, i) => `${i}:${tokenText(model, id)}`);
}

export interface Window {
  /** first position shown (default: the last `maxTokens` positions) */
  from?: number;
  /** one past the last position shown */
  to?: number;
  /** the most positions shown when no range is given (default 64) */
  maxTokens?: number;
}

/** The [from, to) range of positions a figure shows: long prompts are windowed, never squeezed unreadably. */
export function windowOf(n: number, w: Window = {}): [number, number] {
  const to = w.to ?? n;
  const from = w.from ?? Math.max(0, to - (w.maxTokens ?? 64));
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from < to && to <= n)) {
    throw new InputError(`window [${from}, ${to}) is outside the ${n} positions of the trace`);
  }
  return [from, to];
}
