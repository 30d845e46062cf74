// Validation of OpenAI-style request bodies into typed parameters. Every problem is a RequestError that the
// server answers with HTTP 400 and OpenAI's error shape, naming the offending field.
import type { ChatMessage, ChatPart } from "../../engine/tokenizer.ts";

export class RequestError extends Error {
  constructor(message: string, readonly param: string | null = null, readonly status = 400, readonly code: string | null = null) {
    super(message);
  }
}

export interface SamplingParams {
  model: string;
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop: string[];
  thinkingBudget?: number;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionParams extends SamplingParams { prompt: string | number[] }
export interface ChatParams extends SamplingParams { messages: ChatMessage[] }

type Body = Record<string, unknown>;

export function parseBody(raw: string): Body {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new RequestError(`the request body is not valid JSON (${(e as Error).message})`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new RequestError("the request body must be a JSON object");
  return body as Body;
}

export function completionParams(body: Body, servedModel: string): CompletionParams {
  return { ...samplingParams(body, servedModel, "max_tokens", 16), prompt: completionPrompt(body.prompt) };
}

export function chatParams(body: Body, servedModel: string): ChatParams {
  const limitField = body.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
  return { ...samplingParams(body, servedModel, limitField, 256), messages: chatMessages(body.messages) };
}

function samplingParams(body: Body, servedModel: string, limitField: string, defaultMax: number): SamplingParams {
  if (typeof body.model !== "string") throw new RequestError(`"model" must be a string (this server serves "${servedModel}")`, "model");
  if (body.model !== servedModel) throw new RequestError(`the model "${body.model}" does not exist here; this server serves "${servedModel}"`, "model", 400, "model_not_found");
  const n = optional<number>(body, "n", isInt, "an integer");
  if (n !== undefined && n !== 1) throw new RequestError(`"n" must be 1 (one choice per request)`, "n");
  for (const field of ["logprobs", "echo", "best_of", "tools", "suffix"]) {
    const v = body[field];
    if (v !== undefined && v !== null && v !== false && !(field === "best_of" && v === 1)) throw new RequestError(`"${field}" is not supported by this server`, field);
  }
  const streamOptions = optional<Record<string, unknown>>(body, "stream_options", isObject, "an object");
  const includeUsage = streamOptions?.include_usage;
  if (includeUsage !== undefined && typeof includeUsage !== "boolean") throw new RequestError(`"stream_options.include_usage" must be a boolean`, "stream_options");
  const stop = optional<string | string[]>(body, "stop", (v) => typeof v === "string" || (Array.isArray(v) && v.every((s) => typeof s === "string")), "a string or a list of strings");
  const topK = optional<number>(body, "top_k", isInt, "an integer");
  return {
    model: body.model,
    maxTokens: optional<number>(body, limitField, (v) => isInt(v) && v >= 1, "an integer >= 1") ?? defaultMax,
    temperature: optional<number>(body, "temperature", (v) => typeof v === "number" && v >= 0 && v <= 2, "a number in [0, 2]") ?? 1,
    topP: optional<number>(body, "top_p", (v) => typeof v === "number" && v > 0 && v <= 1, "a number in (0, 1]"),
    topK: topK === undefined || topK <= 0 ? undefined : topK, // vLLM: -1 (or 0) turns top-k off
    seed: optional<number>(body, "seed", isInt, "an integer"),
    stop: stop === undefined ? [] : [stop].flat(),
    thinkingBudget: optional<number>(body, "thinking_budget", (v) => isInt(v) && v >= 0, "an integer >= 0"),
    stream: optional<boolean>(body, "stream", (v) => typeof v === "boolean", "a boolean") ?? false,
    includeUsage: includeUsage === true,
  };
}

function completionPrompt(prompt: unknown): string | number[] {
  // a list holding one prompt is the batch form of a single prompt
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" || Array.isArray(prompt[0]))) prompt = prompt[0];
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every(isInt)) return prompt as number[];
  if (Array.isArray(prompt) && prompt.length > 1) throw new RequestError(`"prompt" holds ${prompt.length} prompts; send one per request`, "prompt");
  throw new RequestError(`"prompt" must be a string or a non-empty list of token ids`, "prompt");
}

function chatMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new RequestError(`"messages" must be a non-empty list`, "messages");
  return messages.map((m, i) => {
    const where = `messages[${i}]`;
    if (!isObject(m) || typeof m.role !== "string") throw new RequestError(`${where} must be an object with a string "role"`, "messages");
    const content = m.content ?? "";
    if (typeof content === "string") return { role: m.role, content, ...(typeof m.name === "string" ? { name: m.name } : {}) };
    if (!Array.isArray(content) || !content.every((p) => isObject(p) && typeof p.type === "string")) {
      throw new RequestError(`${where}.content must be a string or a list of {type, text} parts`, "messages");
    }
    const parts = content as ChatPart[];
    const unsupported = parts.find((p) => p.type !== "text" || typeof p.text !== "string");
    if (unsupported) throw new RequestError(`${where}.content: only text parts are supported (got type ${JSON.stringify(unsupported.type)})`, "messages");
    return { role: m.role, content: parts, ...(typeof m.name === "string" ? { name: m.name } : {}) };
  });
}

function optional<T>(body: Body, field: string, ok: (v: unknown) => boolean, what: string): T | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (!ok(v)) throw new RequestError(`"${field}" must be ${what}, got ${JSON.stringify(v)}`, field);
  return v as T;
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
