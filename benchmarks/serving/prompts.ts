import fs from "node:fs";
import path from "node:path";
import { Rng } from "../../engine/sampling.ts";
import { loadConfig } from "../../engine/config.ts";
import { resolveCheckpoint } from "../registry.ts";

/** Prompt i of the serving benchmarks: a 6-digit addition for the demo pair, the same for every level and run. */
export function additionPrompt(i: number): string {
  const a = String(100000 + ((i * 7919) % 900000)).split("").join(" ");
  const b = String(100000 + ((i * 104729) % 900000)).split("").join(" ");
  return `<s> ${a} + ${b} = <think>`;
}

/** Tokens of a prompt given as ids (a checkpoint without a tokenizer): as many as an addition prompt of the demo pair. */
export const ID_PROMPT_TOKENS = 16;

/** Prompt i as token ids: ID_PROMPT_TOKENS ids drawn uniformly below `vocab` from seed i. */
export function idPrompt(i: number, vocab: number): number[] {
  const rng = new Rng(i);
  return Array.from({ length: ID_PROMPT_TOKENS }, () => Math.floor(rng.next() * vocab));
}

/** Prompt i for a checkpoint: its addition as text, or as ids (idPrompt) where `idVocab` (the vocabulary of a
 *  checkpoint without a tokenizer, whose prompts are ids) is given. */
export function benchPrompt(i: number, idVocab: number | null): string | number[] {
  return idVocab === null ? additionPrompt(i) : idPrompt(i, idVocab);
}

/** The vocabulary of the local checkpoint `nameOrPath` if it has no tokenizer.json (prompts as ids), else null. */
export function idVocabOf(nameOrPath: string): number | null {
  const { source } = resolveCheckpoint(nameOrPath);
  if (source.kind !== "local" || fs.existsSync(path.join(source.path, "tokenizer.json"))) return null;
  return loadConfig(source.path).vocabSize;
}
