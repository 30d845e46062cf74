// Retrieval from a long context, by context length and needle depth. "passkey": a 5-digit pass key hidden in
// repeated filler (the Landmark-Attention test); "needle": a city's 7-digit "special magic number" hidden in
// varied filler sentences (RULER-style). Lengths are approximate tokens (4 characters per token).
import { InputError } from "../../../engine/errors.ts";
import type { EvalItem, Task } from "../types.ts";
import { retrievalGrader } from "../graders/retrieval.ts";
import { Picker, approxTokens } from "./random.ts";

export interface RetrievalOptions {
  kind?: "passkey" | "needle";
  /** context lengths in (approximate) tokens */
  lengths?: number[];
  /** needle positions as a fraction of the context: 0 = start, 1 = end */
  depths?: number[];
  perCell?: number;
  seed?: number;
}

const PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
const NEEDLE_FILLER = [
  "The committee met on a Tuesday to review the harbour plans.", "Rain moved slowly across the valley all afternoon.",
  "Several of the old maps disagreed about the river's course.", "A small bakery on the corner opened before dawn.",
  "The library extended its hours during the winter months.", "Most of the orchard was replanted after the frost.",
  "An engineer checked the bridge cables twice a year.", "The museum's new wing displayed ceramics from three centuries.",
];
const CITIES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hobart", "Tunis", "Bergen", "Cusco", "Hanoi", "Oulu", "Perth"];

export function retrievalSuite(options: RetrievalOptions = {}): Task {
  const { kind = "passkey", lengths = [1000, 4000, 16000], depths = [0, 0.25, 0.5, 0.75, 1], perCell = 2, seed = 0 } = options;
  if (kind !== "passkey" && kind !== "needle") throw new InputError(`retrieval: kind must be "passkey" or "needle"`);
  if (!lengths.every((n) => Number.isInteger(n) && n >= 64)) throw new InputError(`${kind}: lengths must be integers >= 64 (tokens)`);
  if (!depths.every((d) => d >= 0 && d <= 1)) throw new InputError(`${kind}: depths must be in [0, 1]`);
  if (!(Number.isInteger(perCell) && perCell >= 1)) throw new InputError(`${kind}: perCell must be an integer >= 1`);
  const pick = new Picker(seed);
  const items: EvalItem[] = [];
  for (const length of lengths) {
    for (const depth of depths) {
      for (let k = 0; k < perCell; k++) items.push(kind === "passkey" ? passkeyItem(pick, length, depth, k) : needleItem(pick, length, depth, k));
    }
  }
  return {
    name: kind,
    description: `${kind} retrieval at ${lengths.join("/")} tokens (≈4 chars/token), depths ${depths.join("/")}, ${perCell} per cell, seed ${seed}`,
    items,
    grader: retrievalGrader(),
    generation: { maxTokens: 32 },
    groups: lengths.flatMap((n) => depths.map((d) => cell(n, d))),
    groupTitle: "context length and needle depth",
  };
}

const cell = (length: number, depth: number) => `${length} tokens, depth ${Math.round(depth * 100)}%`;

function passkeyItem(pick: Picker, length: number, depth: number, k: number): EvalItem {
  const key = String(pick.int(10000, 99999));
  const intro = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important info there.\n\n";
  const needle = `The pass key is ${key}. Remember it. ${key} is the pass key. `;
  const question = "\n\nWhat is the pass key? The pass key is";
  const body = haystack(() => PASSKEY_FILLER, length - approxTokens(intro + needle + question), needle, depth);
  return { id: `passkey-${length}-${depth}-${k}`, prompt: intro + body + question, target: key, group: cell(length, depth) };
}

function needleItem(pick: Picker, length: number, depth: number, k: number): EvalItem {
  const city = pick.pick(CITIES);
  const value = String(pick.int(1000000, 9999999));
  const needle = `The special magic number for ${city} is: ${value}. `;
  const question = `\n\nWhat is the special magic number for ${city} mentioned in the provided text? The special magic number for ${city} is`;
  const body = haystack(() => pick.pick(NEEDLE_FILLER) + " ", length - approxTokens(needle + question), needle, depth);
  return { id: `needle-${length}-${depth}-${k}`, prompt: body + question, target: value, group: cell(length, depth) };
}

/** Filler of about `tokens` tokens with the needle inserted at a sentence boundary at fraction `depth`. */
function haystack(sentence: () => string, tokens: number, needle: string, depth: number): string {
  const parts: string[] = [];
  let size = 0;
  while (size < tokens * 4) {
    const s = sentence();
    parts.push(s);
    size += s.length;
  }
  parts.splice(Math.round(depth * parts.length), 0, needle);
  return parts.join("").trim();
}
