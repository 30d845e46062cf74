// One completion on the local engine with OpenAI semantics, shared by `m1 serve` and the local eval backend so
// that both produce the very same text: temperature 0 is greedy; the text leaves out the end-of-sequence token
// that stopped the generation and ends before the first stop string; streamed pieces never show text that a
// later stop string would remove.
import fs from "node:fs";
import path from "node:path";
import type { Model } from "../../engine/model.ts";
import type { Generation } from "../../engine/generate.ts";
import type { ChatMessage, Tokenizer } from "../../engine/tokenizer.ts";
import { InputError } from "../../engine/errors.ts";
import { RequestError } from "./requests.ts";
import type { CompletionRequest } from "../../benchmarks/eval/types.ts";

/** A completion request as the eval runner makes it, with the prompt as text or token ids (chat already rendered). */
export interface EngineRequest extends Omit<CompletionRequest, "prompt" | "temperature"> {
  /** text (tokenized with the checkpoint's tokenizer) or token ids */
  prompt: string | number[];
  temperature?: number;
  /** Refuse prompts longer than this many tokens (a server's limit). */
  maxPromptTokens?: number;
}

/** Prompt tokens per forward call: between two chunks the event loop runs, so other requests' steps go on. */
const PREFILL_CHUNK = 512;

export interface EngineCompletion {
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
}

/** How chat messages became a prompt: the checkpoint's chat template, or (without one) their contents joined by newlines. */
export type PromptFormat = "chat_template" | "concatenated";

export function chatPrompt(model: Model, messages: ChatMessage[]): { text: string; format: PromptFormat } {
  const tokenizer = requireTokenizer(model);
  if (hasChatTemplate(model.checkpoint.dir)) return { text: tokenizer.renderChat(messages, { addGenerationPrompt: true }), format: "chat_template" };
  const text = messages
    .map((m) => (typeof m.content === "string" ? m.content : m.content.map((p) => p.text ?? "").join("")))
    .join("\n");
  return { text, format: "concatenated" };
}

function hasChatTemplate(dir: string): boolean {
  const file = path.join(dir, "tokenizer_config.json");
  if (!fs.existsSync(file)) return false;
  const config = JSON.parse(fs.readFileSync(file, "utf8"));
  return config.chat_template !== undefined && config.chat_template !== null;
}

export function requireTokenizer(model: Model): Tokenizer {
  if (!model.tokenizer) throw new InputError(`${model.checkpoint.dir} has no tokenizer.json: completions need one`);
  return model.tokenizer;
}

interface Started {
  tokenizer: Tokenizer;
  promptIds: number[];
  stop: string[];
  generation: Generation;
}

function start(model: Model, request: EngineRequest): Started {
  const tokenizer = requireTokenizer(model);
  const promptIds = promptTokens(tokenizer, request.prompt, request.maxPromptTokens);
  const stop = (request.stop ?? []).filter((s) => s !== "");
  const generation = model.generate(promptIds, {
    maxNewTokens: request.maxTokens,
    greedy: request.temperature === 0,
    temperature: request.temperature === 0 ? undefined : request.temperature,
    topP: request.topP,
    topK: request.topK,
    seed: request.seed,
    stopStrings: stop.length > 0 ? stop : undefined,
    thinkingBudget: request.thinkingBudget,
    prefillChunk: PREFILL_CHUNK,
    signal: request.signal,
  });
  return { tokenizer, promptIds, stop, generation };
}

/** Characters of a long text prompt encoded first, per token of the limit: the rest is encoded only if they fit. */
const PREFIX_CHARS_PER_TOKEN = 16;

/**
 * The prompt's token ids, refused past `limit` tokens. A text far longer than the limit is judged by a prefix first
 * (cut at a space), so a request of megabytes is refused without encoding all of it (seconds of a blocked server).
 */
function promptTokens(tokenizer: Tokenizer, prompt: string | number[], limit: number | undefined): number[] {
  const tooLong = (count: string) =>
    new RequestError(`the prompt has ${count} tokens, more than this server's limit of ${limit} (m1 serve --max-prompt-tokens)`, "prompt", 400, "context_length_exceeded");
  if (limit !== undefined && typeof prompt === "string" && prompt.length > PREFIX_CHARS_PER_TOKEN * limit) {
    const space = prompt.lastIndexOf(" ", PREFIX_CHARS_PER_TOKEN * limit);
    const head = tokenizer.encode(prompt.slice(0, space > 0 ? space : PREFIX_CHARS_PER_TOKEN * limit));
    if (head.length > limit) throw tooLong(`more than ${head.length}`);
  }
  const ids = typeof prompt === "string" ? tokenizer.encode(prompt) : prompt;
  if (limit !== undefined && ids.length > limit) throw tooLong(String(ids.length));
  return ids;
}

function finished({ tokenizer, promptIds, stop, generation }: Started, ids: number[]): EngineCompletion {
  const { text } = visibleText(tokenizer, ids, stop, generation.stopReason === "stop_token");
  const stopped = generation.stopReason === "stop_token" || generation.stopReason === "stop_string";
  return { text, finishReason: stopped ? "stop" : "length", promptTokens: promptIds.length, completionTokens: ids.length };
}

/** Streams text pieces; returns the finished completion (the same as completeWithEngine's). */
export async function* streamCompletion(model: Model, request: EngineRequest): AsyncGenerator<string, EngineCompletion> {
  const started = start(model, request);
  const { tokenizer, stop, generation } = started;
  const ids: number[] = [];
  let emitted = "";
  for await (const token of generation) {
    ids.push(token.id);
    // the newest token is shown one step late: it may be the end-of-sequence token that the text leaves out;
    // also held back: an incomplete UTF-8 character, and any tail that could still grow into a stop string
    const { text, cut } = visibleText(tokenizer, ids, stop, true);
    const safe = cut ? text.length : text.length - Math.max(heldBack(text, stop), text.endsWith("\uFFFD") ? 1 : 0);
    if (safe > emitted.length && text.startsWith(emitted)) {
      yield text.slice(emitted.length, safe);
      emitted = text.slice(0, safe);
    }
  }
  const done = finished(started, ids);
  if (done.text.length > emitted.length && done.text.startsWith(emitted)) yield done.text.slice(emitted.length);
  return done;
}

export async function completeWithEngine(model: Model, request: EngineRequest): Promise<EngineCompletion> {
  const started = start(model, request);
  const { ids } = await started.generation.result();
  return finished(started, ids);
}

/** Decoded text of the generated ids (without a final stop token), cut before the first stop string. */
function visibleText(tokenizer: Tokenizer, ids: number[], stop: string[], dropLast: boolean): { text: string; cut: boolean } {
  const text = tokenizer.decode(dropLast ? ids.slice(0, -1) : ids, { skipUnknown: true });
  let at = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at < 0 ? { text, cut: false } : { text: text.slice(0, at), cut: true };
}

/** Length of the longest suffix of `text` that is a proper prefix of a stop string. */
function heldBack(text: string, stop: string[]): number {
  let n = 0;
  for (const s of stop) {
    for (let k = Math.min(s.length - 1, text.length); k > n; k--) {
      if (text.endsWith(s.slice(0, k))) {
        n = k;
        break;
      }
    }
  }
  return n;
}
