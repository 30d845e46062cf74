// Synthetic multi-round coreference in the OpenAI-MRCR format: a chat in which the user asks for many short
// pieces ("write a poem about tapirs"), one request repeated `needles` times among distinct distractors; the
// last turn asks to prepend a random prefix to the k-th (1-indexed) of the identical requests' answers.
// Graded by the MRCR protocol (prefix, then SequenceMatcher ratio), binned by context length.
import { InputError } from "../../../engine/errors.ts";
import type { ChatMessage } from "../../../engine/tokenizer.ts";
import type { EvalItem, Reference, Task } from "../types.ts";
import { mrcrGrader } from "../graders/mrcr.ts";
import { lengthBin, binOrder } from "../bins.ts";
import { table2Data, citation } from "../../paper/data.ts";
import { Picker, approxTokens } from "./random.ts";

export interface MrcrOptions {
  /** user requests per conversation (sets the context length, ≈ 60 tokens per exchange) */
  turns?: number[];
  /** identical requests per conversation: 2, 4 or 8 as in OpenAI-MRCR */
  needles?: number;
  perCell?: number;
  seed?: number;
}

const FORMS = ["poem", "short story", "riddle", "haiku", "limerick", "letter", "essay", "song"];
const TOPICS = ["tapirs", "lighthouses", "glaciers", "violins", "deserts", "owls", "trains", "coral reefs", "volcanoes", "kites", "libraries", "bees", "comets", "harbours", "foxes", "clocks"];
const WORDS = "quiet ancient river stone light over under gentle wind morning silver slow bright across hidden garden evening distant warm cold falling rising small great old new green blue golden soft loud dream road field sea sky night day song voice shadow".split(" ");

export function mrcrSuite(options: MrcrOptions = {}): Task {
  const { turns = [8, 32, 128], needles = 2, perCell = 2, seed = 0 } = options;
  if (![2, 4, 8].includes(needles)) throw new InputError(`mrcr: needles must be 2, 4 or 8`);
  if (!turns.every((n) => Number.isInteger(n) && n >= needles + 1)) throw new InputError(`mrcr: turns must be integers > needles (${needles})`);
  if (!(Number.isInteger(perCell) && perCell >= 1)) throw new InputError(`mrcr: perCell must be an integer >= 1`);
  const pick = new Picker(seed);
  const items: EvalItem[] = [];
  for (const n of turns) for (let k = 0; k < perCell; k++) items.push(conversation(pick, n, needles, `mrcr-${needles}n-${n}t-${k}`));
  return {
    name: `mrcr-${needles}needle`,
    description: `synthetic MRCR, ${needles} identical requests among ${turns.join("/")} requests, ${perCell} per length, seed ${seed}`,
    items,
    grader: mrcrGrader(),
    generation: { maxTokens: 256 },
    groups: [...new Set(items.map((x) => x.group!))].sort((a, b) => binOrder(a) - binOrder(b)),
    groupTitle: "context length (≈ tokens)",
    reference: mrcrPaperReference,
  };
}

function conversation(pick: Picker, turns: number, needles: number, id: string): EvalItem {
  const [form, topic] = [pick.pick(FORMS), pick.pick(TOPICS)];
  const positions = new Set(pick.sample(Array.from({ length: turns }, (_, i) => i), needles));
  const messages: ChatMessage[] = [];
  const answers: string[] = [];
  for (let i = 0; i < turns; i++) {
    let f = form;
    let t = topic;
    if (!positions.has(i)) {
      do [f, t] = [pick.pick(FORMS), pick.pick(TOPICS)];
      while (f === form && t === topic);
    }
    const reply = piece(pick);
    if (positions.has(i)) answers.push(reply);
    messages.push({ role: "user", content: `write a ${f} about ${t}` }, { role: "assistant", content: reply });
  }
  const k = pick.int(1, needles);
  const prefix = pick.chars(10, "abcdefghijklmnopqrstuvwxyz0123456789");
  messages.push({ role: "user", content: `Prepend ${prefix} to the ${ordinal(k)} (1 indexed) ${form} about ${topic}. Do not include any other text in your response.` });
  const tokens = approxTokens(messages.map((m) => m.content as string).join("\n"));
  return { id, prompt: messages, target: prefix + answers[k - 1], group: lengthBin(tokens), meta: { prefix, tokens, needle_index: k } };
}

/** A few lines of pseudo-verse: distinct enough that a wrong piece scores low. */
function piece(pick: Picker): string {
  const lines = Array.from({ length: pick.int(3, 5) }, () => {
    const words = Array.from({ length: pick.int(5, 8) }, () => pick.pick(WORDS)).join(" ");
    return words[0].toUpperCase() + words.slice(1) + ".";
  });
  return lines.join("\n");
}

function ordinal(k: number): string {
  return `${k}${k === 1 ? "st" : k === 2 ? "nd" : k === 3 ? "rd" : "th"}`;
}

/** MiniMax-M1's published OpenAI-MRCR scores (Table 2) at the 128K and 1M bins. */
export function mrcrPaperReference(model: string): Reference | null {
  const t2 = table2Data();
  const col = t2.models.indexOf(model);
  if (col < 0) return null;
  const score = (task: string) => t2.rows.find((r) => r.task === task)?.scores[col] ?? null;
  const points: Record<string, number> = {};
  const at128k = score("OpenAI-MRCR (128k)");
  const at1m = score("OpenAI-MRCR (1M)");
  if (at128k !== null) points[lengthBin(128 * 1024)] = at128k / 100;
  if (at1m !== null) points[lengthBin(1024 * 1024)] = at1m / 100;
  return { label: `${model}, OpenAI-MRCR (Table 2: the ≤128K average at the 64K-128K bin, and 1M)`, source: citation(t2.source), points };
}
