// Building blocks of the published tasks' items: a question sent as a chat with a system prompt, and the
// check that item ids are unique (a run's samples are stored by item id).
import { InputError } from "../../../engine/errors.ts";
import type { ChatMessage } from "../../../engine/tokenizer.ts";
import type { EvalItem, JsonValue } from "../types.ts";

export function chatItem(id: string, system: string | null, user: string, target: string, meta?: Record<string, JsonValue>): EvalItem {
  const prompt: ChatMessage[] = [...(system ? [{ role: "system", content: system }] : []), { role: "user", content: user }];
  return { id, prompt, target, ...(meta ? { meta } : {}) };
}

/** The system prompt a loader sends: MiniMax's recommended one, unless the options give another (null: none). */
export function systemPrompt(options: { systemPrompt?: string | null }, recommended: string): string | null {
  return options.systemPrompt === undefined ? recommended : options.systemPrompt;
}

export function uniqueIds(items: EvalItem[], where: string): void {
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.id)) throw new InputError(`${where}: item id "${item.id}" appears twice`);
    seen.add(item.id);
  }
}
