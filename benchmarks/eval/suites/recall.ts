// Associative recall: a list of key → value pairs, then one key to look up (the Zoology/MQAR probe of what a
// fixed-size recurrent state can hold, which lightning attention's state must do without softmax's cache).
import { InputError } from "../../../engine/errors.ts";
import type { EvalItem, Task } from "../types.ts";
import { exactMatch } from "../graders/exact.ts";
import { Picker } from "./random.ts";

export interface RecallOptions {
  /** pairs per list */
  pairs?: number[];
  perCell?: number;
  seed?: number;
}

export function recallSuite(options: RecallOptions = {}): Task {
  const { pairs = [8, 32, 128], perCell = 4, seed = 0 } = options;
  if (!pairs.every((n) => Number.isInteger(n) && n >= 1 && n <= 5000)) throw new InputError(`recall: pairs must be integers in 1..5000`);
  if (!(Number.isInteger(perCell) && perCell >= 1)) throw new InputError(`recall: perCell must be an integer >= 1`);
  const pick = new Picker(seed);
  const items: EvalItem[] = [];
  for (const n of pairs) {
    for (let k = 0; k < perCell; k++) {
      const keys = new Set<string>();
      while (keys.size < n) keys.add(pick.chars(4, "ABCDEFGHJKLMNPQRSTUVWXYZ"));
      const list = [...keys].map((key) => [key, String(pick.int(100, 999))] as const);
      const [key, value] = pick.pick(list);
      const prompt = `Remember these pairs:\n${list.map(([a, b]) => `${a}: ${b}`).join("\n")}\n\nWhat number goes with ${key}? Answer with the number only.`;
      items.push({ id: `recall-${n}-${k}`, prompt: [{ role: "user", content: prompt }], target: value, group: `${n} pairs` });
    }
  }
  return {
    name: "associative-recall",
    description: `associative recall over ${pairs.join("/")} key-value pairs, ${perCell} per size, seed ${seed}`,
    items,
    grader: exactMatch({ ignorePunctuation: true }),
    generation: { maxTokens: 16 },
    groups: pairs.map((n) => `${n} pairs`),
    groupTitle: "key-value pairs in the list",
  };
}
