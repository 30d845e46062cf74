// Validation of OpenAI-style request bodies into typed parameters. Every problem is a RequestError that the
// server answers with HTTP 400 and OpenAI's error shape, naming the offending field.
import type { ChatMessage, ChatPart } from "../../engine/tokenizer.ts";
import { renderToolCalls } from "../../engine/tool-calls.ts";

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
  /** `routing_logs`: per generated token, each layer's experts and weights */
  routingLogs: boolean;
  /** `expert_threshold`: keep the top-k experts whose renormalised weight reaches it (at least one) */
  expertThreshold?: number;
}

export interface CompletionParams extends SamplingParams {
  prompt: string | number[];
  /** top alternatives per token to return with each token's log-probability (0: just the token's) */
  logprobs?: number;
  /** return the prompt before the completion (with its log-probabilities when `logprobs` is set) */
  echo: boolean;
}

/** A function the model may call, as the chat template lists it ({name, description, parameters}). */
export interface ToolFunction { name: string; description?: string; parameters?: Record<string, unknown> }

/** none: tools are not shown; auto: the model decides; required / a function: the answer starts the call. */
export type ToolChoice = "none" | "auto" | "required" | { name: string };

export interface ChatParams extends SamplingParams {
  messages: ChatMessage[];
  tools: ToolFunction[];
  toolChoice: ToolChoice;
  /** `logprobs: true`: each generated token's log-probability, with this many (`top_logprobs`) alternatives */
  logprobs?: number;
}

type Body = Record<string, unknown>;

/** OpenAI's rule for function names. */
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

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
  const echo = optional<boolean>(body, "echo", (v) => typeof v === "boolean", "a boolean") ?? false;
  const logprobs = optional<number>(body, "logprobs", (v) => isInt(v) && v >= 0 && v <= 20, "an integer in [0, 20]");
  // echo with max_tokens 0 scores a text without generating (lm-evaluation-harness's loglikelihood requests)
  const sampling = samplingParams(body, servedModel, "max_tokens", 16, echo ? 0 : 1);
  return { ...sampling, prompt: completionPrompt(body.prompt), echo, ...(logprobs !== undefined ? { logprobs } : {}) };
}

export function chatParams(body: Body, servedModel: string): ChatParams {
  const limitField = body.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
  const tools = toolList(body.tools);
  const toolChoice = toolChoiceOf(body.tool_choice, tools);
  const sampling = samplingParams(body, servedModel, limitField, 256, 1);
  const logprobs = chatLogprobsParam(body);
  return { ...sampling, messages: chatMessages(body.messages), tools, toolChoice, ...(logprobs !== undefined ? { logprobs } : {}) };
}

/** Chat's `logprobs: true` with `top_logprobs: n` (0-20) as the number of alternatives per token; undefined: none asked. */
function chatLogprobsParam(body: Body): number | undefined {
  const wanted = optional<boolean>(body, "logprobs", (v) => typeof v === "boolean", "a boolean (chat completions; the number of alternatives is \"top_logprobs\")");
  const top = optional<number>(body, "top_logprobs", (v) => isInt(v) && v >= 0 && v <= 20, "an integer in [0, 20]");
  if (top !== undefined && !wanted) throw new RequestError(`"top_logprobs" needs "logprobs": true`, "top_logprobs");
  return wanted ? top ?? 0 : undefined;
}

/** OpenAI's [{type: "function", function: {name, description, parameters}}] (or the bare functions, as MiniMax's guide lists them). */
function toolList(value: unknown): ToolFunction[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RequestError(`"tools" must be a list of {type: "function", function: {name, description, parameters}}`, "tools");
  const names = new Set<string>();
  return value.map((t, i) => {
    const f = isObject(t) && t.type === "function" && isObject(t.function) ? t.function : t;
    if (!isObject(f) || typeof f.name !== "string" || f.name === "") throw new RequestError(`tools[${i}] must be {type: "function", function: {name: string, …}}`, "tools");
    if (!TOOL_NAME.test(f.name)) throw new RequestError(`tools[${i}].function.name must be 1-64 letters, digits, _ or -, got ${JSON.stringify(f.name.slice(0, 80))}`, "tools");
    if (names.has(f.name)) throw new RequestError(`tools[${i}].function.name "${f.name}" is given twice`, "tools");
    names.add(f.name);
    if (f.parameters !== undefined && !(isObject(f.parameters) && (f.parameters.type === undefined || f.parameters.type === "object"))) {
      throw new RequestError(`tools[${i}].function.parameters must be a JSON schema object of type "object"`, "tools");
    }
    if (f.description !== undefined && typeof f.description !== "string") throw new RequestError(`tools[${i}].function.description must be a string`, "tools");
    return { name: f.name, ...(f.description !== undefined ? { description: f.description as string } : {}), ...(f.parameters !== undefined ? { parameters: f.parameters as Record<string, unknown> } : {}) };
  });
}

function toolChoiceOf(value: unknown, tools: ToolFunction[]): ToolChoice {
  if (value === undefined || value === null) return tools.length ? "auto" : "none";
  if (value === "none" || value === "auto" || value === "required") {
    if (value !== "none" && tools.length === 0) throw new RequestError(`"tool_choice" is "${value}" but no "tools" are given`, "tool_choice");
    return value;
  }
  const name = isObject(value) && value.type === "function" && isObject(value.function) ? value.function.name : undefined;
  if (typeof name !== "string") throw new RequestError(`"tool_choice" must be "none", "auto", "required" or {type: "function", function: {name}}`, "tool_choice");
  if (!tools.some((t) => t.name === name)) throw new RequestError(`"tool_choice" names "${name}", which is not in "tools"`, "tool_choice");
  return { name };
}

function samplingParams(body: Body, servedModel: string, limitField: string, defaultMax: number, minTokens: number): SamplingParams {
  if (typeof body.model !== "string") throw new RequestError(`"model" must be a string (this server serves "${servedModel}")`, "model");
  if (body.model !== servedModel) throw new RequestError(`the model "${body.model}" does not exist here; this server serves "${servedModel}"`, "model", 400, "model_not_found");
  const n = optional<number>(body, "n", isInt, "an integer");
  if (n !== undefined && n !== 1) throw new RequestError(`"n" must be 1 (one choice per request)`, "n");
  for (const field of ["best_of", "suffix"]) {
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
    maxTokens: optional<number>(body, limitField, (v) => isInt(v) && v >= minTokens, `an integer >= ${minTokens}`) ?? defaultMax,
    temperature: optional<number>(body, "temperature", (v) => typeof v === "number" && v >= 0 && v <= 2, "a number in [0, 2]") ?? 1,
    topP: optional<number>(body, "top_p", (v) => typeof v === "number" && v > 0 && v <= 1, "a number in (0, 1]"),
    topK: topK === undefined || topK <= 0 ? undefined : topK, // vLLM: -1 (or 0) turns top-k off
    seed: optional<number>(body, "seed", isInt, "an integer"),
    stop: stop === undefined ? [] : [stop].flat(),
    thinkingBudget: optional<number>(body, "thinking_budget", (v) => isInt(v) && v >= 0, "an integer >= 0"),
    stream: optional<boolean>(body, "stream", (v) => typeof v === "boolean", "a boolean") ?? false,
    includeUsage: includeUsage === true,
    routingLogs: optional<boolean>(body, "routing_logs", (v) => typeof v === "boolean", "a boolean") ?? false,
    expertThreshold: optional<number>(body, "expert_threshold", (v) => typeof v === "number" && v >= 0 && v <= 1, "a number in [0, 1]"),
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

/**
 * OpenAI chat messages as the chat template takes them: an assistant turn's `tool_calls` become the
 * <tool_calls> block the model wrote, and a `tool` message carries the name of the function it answers
 * (its own `name`, or the call's whose `tool_call_id` it gives).
 */
function chatMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new RequestError(`"messages" must be a non-empty list`, "messages");
  const callNames = new Map<string, string>();
  return messages.map((m, i) => {
    const where = `messages[${i}]`;
    if (!isObject(m) || typeof m.role !== "string") throw new RequestError(`${where} must be an object with a string "role"`, "messages");
    if (m.role === "assistant" && m.tool_calls !== undefined && m.tool_calls !== null) {
      const calls = assistantCalls(m.tool_calls, where);
      for (const c of calls) callNames.set(c.id, c.name);
      const text = typeof m.content === "string" ? m.content : "";
      return { role: "assistant", content: `${text}${text ? "\n" : ""}${renderToolCalls(calls)}` };
    }
    if (m.role === "tool") {
      const name = typeof m.name === "string" ? m.name : typeof m.tool_call_id === "string" ? callNames.get(m.tool_call_id) : undefined;
      if (name === undefined) throw new RequestError(`${where}: a tool message needs "name" or the "tool_call_id" of an earlier assistant tool call`, "messages");
      return { ...textMessage(m, where), name };
    }
    return textMessage(m, where);
  });
}

function assistantCalls(value: unknown, where: string): { id: string; name: string; arguments: string }[] {
  if (!Array.isArray(value)) throw new RequestError(`${where}.tool_calls must be a list`, "messages");
  return value.map((c, j) => {
    const f = isObject(c) && isObject(c.function) ? c.function : null;
    if (!f || typeof f.name !== "string" || typeof f.arguments !== "string") throw new RequestError(`${where}.tool_calls[${j}] must be {id, type: "function", function: {name, arguments: JSON string}}`, "messages");
    try {
      JSON.parse(f.arguments);
    } catch {
      throw new RequestError(`${where}.tool_calls[${j}].function.arguments is not valid JSON`, "messages");
    }
    return { id: typeof c.id === "string" ? c.id : `${where}-${j}`, name: f.name, arguments: f.arguments };
  });
}

function textMessage(m: Record<string, unknown>, where: string): ChatMessage {
  const role = m.role as string;
  const content = m.content ?? "";
  if (typeof content === "string") return { role, content, ...(typeof m.name === "string" ? { name: m.name } : {}) };
  if (!Array.isArray(content) || !content.every((p) => isObject(p) && typeof p.type === "string")) {
    throw new RequestError(`${where}.content must be a string or a list of {type, text} parts`, "messages");
  }
  const parts = content as ChatPart[];
  const unsupported = parts.find((p) => p.type !== "text" || typeof p.text !== "string");
  if (unsupported) throw new RequestError(`${where}.content: only text parts are supported (got type ${JSON.stringify(unsupported.type)})`, "messages");
  return { role, content: parts, ...(typeof m.name === "string" ? { name: m.name } : {}) };
}

function optional<T>(body: Body, field: string, ok: (v: unknown) => boolean, what: string): T | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (!ok(v)) throw new RequestError(`"${field}" must be ${what}, got ${JSON.stringify(v)}`, field);
  return v as T;
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
