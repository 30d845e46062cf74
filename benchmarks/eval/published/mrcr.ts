// OpenAI-MRCR as published (openai/mrcr: {2,4,8}needle/*.parquet with prompt [the chat as a JSON string],
// answer, random_string_to_prepend, n_needles, desired_msg_index, total_messages, n_chars). Graded by its
// protocol (the `mrcr` grader: the random prefix, then SequenceMatcher's ratio) and reported per context-length
// bin up to 1M tokens (≈ n_chars / 4 tokens, powers of two as OpenAI's bins).
import { InputError } from "../../../engine/errors.ts";
import type { ChatMessage } from "../../../engine/tokenizer.ts";
import type { EvalItem, Task } from "../types.ts";
import { mrcrGrader } from "../graders/mrcr.ts";
import { binOrder, lengthBin } from "../bins.ts";
import { mrcrPaperReference } from "../suites/mrcr.ts";
import { Fields, isObject, readRecords, recordWhere } from "./records.ts";
import { paperProtocol } from "./protocol.ts";
import { uniqueIds } from "./items.ts";
import type { LoadOptions } from "./math.ts";

export interface MrcrLoadOptions extends LoadOptions {
  /** leave out conversations longer than this many (≈) tokens */
  maxTokens?: number;
}

export async function openaiMrcrTask(file: string, options: MrcrLoadOptions = {}): Promise<Task> {
  const records = await readRecords(file);
  const items: EvalItem[] = [];
  for (const [i, r] of records.entries()) {
    const where = recordWhere(file, i);
    const f = new Fields(r, where);
    const messages = f.json("prompt");
    if (!Array.isArray(messages) || !messages.every((m) => isObject(m) && typeof m.role === "string" && typeof m.content === "string")) {
      throw new InputError(`${where}: field "prompt" must be a list of {role, content} messages`);
    }
    const nChars = typeof r.n_chars === "number" ? r.n_chars : (messages as ChatMessage[]).reduce((n, m) => n + (m.content as string).length, 0);
    const tokens = Math.ceil(nChars / 4);
    if (options.maxTokens !== undefined && tokens > options.maxTokens) continue;
    const prefix = f.string("random_string_to_prepend");
    const needles = typeof r.n_needles === "number" ? r.n_needles : null;
    items.push({
      id: `mrcr-${needles ?? "n"}needle-${i}`, prompt: messages as ChatMessage[], target: f.string("answer"), group: lengthBin(tokens),
      meta: { prefix, tokens, needles, desired_msg_index: typeof r.desired_msg_index === "number" ? r.desired_msg_index : null },
    });
    if (items.length === options.limit) break;
  }
  uniqueIds(items, file);
  return {
    name: "openai-mrcr", description: `OpenAI-MRCR: ${items.length} conversations from ${file}`, items, grader: mrcrGrader(),
    generation: { maxTokens: 4096 }, protocol: paperProtocol(1), paperRow: "OpenAI-MRCR (128k)",
    groups: [...new Set(items.map((x) => x.group!))].sort((a, b) => binOrder(a) - binOrder(b)),
    groupTitle: "context length (≈ tokens)", reference: mrcrPaperReference,
  };
}
