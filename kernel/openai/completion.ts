// One completion on the local engine with OpenAI semantics, shared by `m1 serve` and the local eval backend so
// that both produce the very same text: temperature 0 is greedy; the text leaves out the end-of-sequence token
// that stopped the generation and ends before the first stop string; streamed pieces never show text that a
// later stop string would remove. On request also: each token's log-probability under the model (and the
// prompt's, with echo), the experts each layer chose per generated token, and an expert threshold with the
// active parameters it saves.
import type { Model } from "../../engine/model.ts";
import type { StopReason } from "../../engine/generate.ts";
import type { ExpertRouting, LayerRouting } from "../../engine/expert-routing.ts";
import type { BatchScheduler } from "./scheduler.ts";
import { countParameters } from "../../engine/plan.ts";
import type { ChatMessage, Tokenizer } from "../../engine/tokenizer.ts";
import { InputError } from "../../engine/errors.ts";
import { firstIndexOf, IncrementalDecoder } from "../../engine/incremental-decoder.ts";
import { RequestError } from "./requests.ts";
import type { CompletionRequest } from "../../benchmarks/eval/types.ts";
import { logprobEntries, pieceAfter, windowBefore, type TokenLogprob } from "./logprobs.ts";

/** A completion request as the eval runner makes it, with the prompt as text or token ids (chat already rendered). */
export interface EngineRequest extends Omit<CompletionRequest, "prompt" | "temperature"> {
  /** text (tokenized with the checkpoint's tokenizer) or token ids */
  prompt: string | number[];
  temperature?: number;
  /** log-probabilities of the generated tokens, with this many top alternatives each */
  logprobs?: number;
  /** the prompt's tokens come first in the text (and in the log-probabilities) */
  echo?: boolean;
  routingLog?: boolean;
  expertThreshold?: number;
  /** Refuse prompts longer than this many tokens (a server's limit). */
  maxPromptTokens?: number;
}

/** Per generated token: its text and each layer's chosen experts with their weights. */
export interface TokenRouting { token: string; layers: LayerRouting[] }

/** Active parameters per token (as the paper counts them: no embedding or LM head) and those the threshold saved. */
export interface ExpertUsage { expert_threshold: number | null; active_params_per_token: number; active_params_saved_per_token: number }

export interface EngineCompletion {
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
  /** per token of the text (the prompt's first, with echo) */
  logprobs?: TokenLogprob[];
  routing?: TokenRouting[];
  experts?: ExpertUsage;
  /** the generated token ids, given where the checkpoint has no tokenizer (the text is then empty) */
  tokenIds?: number[];
}

/** How chat messages became a prompt: the checkpoint's chat template, or (without one) their contents joined by newlines. */
export type PromptFormat = "chat_template" | "concatenated";

/** `tools` (function objects) are listed in the template's tools section; a checkpoint without a template cannot show them. */
export function chatPrompt(model: Model, messages: ChatMessage[], tools: object[] = []): { text: string; format: PromptFormat } {
  const tokenizer = requireTokenizer(model);
  if (tokenizer.hasChatTemplate) return { text: tokenizer.renderChat(messages, { addGenerationPrompt: true, ...(tools.length ? { tools } : {}) }), format: "chat_template" };
  if (tools.length) throw new InputError(`${model.checkpoint.dir} has no chat template, so it cannot be shown tools`);
  const text = messages
    .map((m) => (typeof m.content === "string" ? m.content : m.content.map((p) => p.text ?? "").join("")))
    .join("\n");
  return { text, format: "concatenated" };
}

export function requireTokenizer(model: Model): Tokenizer {
  if (!model.tokenizer) throw new InputError(`${model.checkpoint.dir} has no tokenizer.json: completions need one`);
  return model.tokenizer;
}

/** A token as a completion reads it: its id, and (from the engine's own generation) its logits and routing. */
interface SourceToken { id: number; logits?: Float32Array; routing?: LayerRouting[] }

/** The engine's own generation of one request, or the request's share of the server's batch. */
type TokenSource = AsyncIterable<SourceToken> & { readonly stopReason: StopReason | null };

interface Started {
  /** null for a checkpoint without tokenizer.json, which takes and gives token ids only */
  tokenizer: Tokenizer | null;
  promptIds: number[];
  stop: string[];
  generation: TokenSource;
  /** the router hooks of a request with routing logs or an expert threshold */
  routing: ExpertRouting | null;
}

/** Whether a request can decode in a shared batch: it needs no hook and no logits beyond choosing its tokens. */
export function batchable(request: Omit<EngineRequest, "prompt">): boolean {
  return request.logprobs === undefined && !request.echo && !request.routingLog && request.expertThreshold === undefined;
}

/** Characters of a long text prompt encoded first, per token of the limit: the rest is encoded only if they fit. */
const PREFIX_CHARS_PER_TOKEN = 16;

/**
 * The prompt's token ids, refused past `limit` tokens. A text far longer than the limit is judged by a prefix first
 * (cut at a space), so a request of megabytes is refused without encoding all of it (seconds of a blocked server).
 */
function promptTokens(tokenizer: Tokenizer | null, prompt: string | number[], limit: number | undefined): number[] {
  const tooLong = (count: string) =>
    new RequestError(`the prompt has ${count} tokens, more than this server's limit of ${limit} (m1 serve --max-prompt-tokens)`, "prompt", 400, "context_length_exceeded");
  if (typeof prompt !== "string") {
    if (limit !== undefined && prompt.length > limit) throw tooLong(String(prompt.length));
    return prompt;
  }
  // a text prompt has a tokenizer (checkIdsOnly)
  if (limit !== undefined && prompt.length > PREFIX_CHARS_PER_TOKEN * limit) {
    const space = prompt.lastIndexOf(" ", PREFIX_CHARS_PER_TOKEN * limit);
    const head = tokenizer!.encode(prompt.slice(0, space > 0 ? space : PREFIX_CHARS_PER_TOKEN * limit));
    if (head.length > limit) throw tooLong(`more than ${head.length}`);
  }
  const ids = tokenizer!.encode(prompt);
  if (limit !== undefined && ids.length > limit) throw tooLong(String(ids.length));
  return ids;
}

/**
 * A checkpoint without a tokenizer (a seeded random benchmark checkpoint, `m1 make-checkpoint`) serves token ids:
 * a prompt of ids in, the generated ids out (in `tokenIds`, with an empty text, as vLLM does without a tokenizer).
 * What needs text is refused, naming the field.
 */
function checkIdsOnly(model: Model, request: EngineRequest): void {
  const needsText: [string, boolean][] = [
    ["prompt", typeof request.prompt === "string"], ["stop", (request.stop ?? []).some((s) => s !== "")],
    ["logprobs", request.logprobs !== undefined], ["echo", !!request.echo], ["routing_logs", !!request.routingLog],
  ];
  const field = needsText.find(([, used]) => used)?.[0];
  if (field) {
    const what = field === "prompt" ? "a text prompt: send the prompt as a list of token ids" : `"${field}", which needs text: leave it out`;
    throw new RequestError(`${model.checkpoint.dir} has no tokenizer.json, so it cannot take ${what}`, field);
  }
}

function start(model: Model, request: EngineRequest, scheduler?: BatchScheduler): Started {
  const tokenizer = model.tokenizer ?? null;
  if (!tokenizer) checkIdsOnly(model, request);
  const promptIds = promptTokens(tokenizer, request.prompt, request.maxPromptTokens);
  const stop = (request.stop ?? []).filter((s) => s !== "");
  const sampling = {
    maxNewTokens: request.maxTokens,
    greedy: request.temperature === 0,
    temperature: request.temperature === 0 ? undefined : request.temperature,
    topP: request.topP,
    topK: request.topK,
    seed: request.seed,
    thinkingBudget: request.thinkingBudget,
  };
  if (scheduler) {
    if (!batchable(request)) throw new InputError("this request needs the engine to itself (logprobs, echo, routing logs or an expert threshold): run it through the scheduler's exclusive path");
    return { tokenizer, promptIds, stop, generation: scheduler.generate(promptIds, sampling, stop, request.signal), routing: null };
  }
  const generation = model.generate(promptIds, {
    ...sampling,
    stopStrings: stop.length > 0 ? stop : undefined,
    signal: request.signal,
    keepLogits: request.logprobs !== undefined,
    routingLog: request.routingLog,
    expertThreshold: request.expertThreshold,
  });
  return { tokenizer, promptIds, stop, generation, routing: generation.routing };
}

/** The prompt's tokens with their log-probabilities (one forward over the prompt), for echo. */
async function promptLogprobs(model: Model, tokenizer: Tokenizer, request: EngineRequest, promptIds: number[]): Promise<TokenLogprob[]> {
  const { logits } = await model.forward(promptIds, { logits: "all", signal: request.signal });
  const vocab = logits.shape[1];
  const all = logits.f32;
  return logprobEntries(tokenizer, promptIds, (i) => (i === 0 ? null : all.subarray((i - 1) * vocab, i * vocab)), request.logprobs!);
}

/** Log-probabilities of tokens[from..to) of the generated ones. */
function generatedLogprobs(tokenizer: Tokenizer, request: EngineRequest, tokens: SourceToken[], from: number, to: number): TokenLogprob[] {
  return logprobEntries(tokenizer, tokens.map((t) => t.id), (i) => tokens[i].logits!, request.logprobs!, from, to);
}

/** Tokens of the text: the generated ones less an end-of-sequence token that stopped the generation. */
function shownTokens(generation: TokenSource, tokens: SourceToken[]): SourceToken[] {
  return generation.stopReason === "stop_token" ? tokens.slice(0, -1) : tokens;
}

/** The finished completion; `logprobs`: those of the text already computed (a stream's), else computed here. */
async function finished(model: Model, request: EngineRequest, { tokenizer, promptIds, stop, generation, routing }: Started, tokens: SourceToken[], logprobs?: TokenLogprob[]): Promise<EngineCompletion> {
  const ids = tokens.map((t) => t.id);
  const droppedStop = generation.stopReason === "stop_token";
  const stopped = droppedStop || generation.stopReason === "stop_string";
  const shown = shownTokens(generation, tokens);
  const counts = {
    finishReason: stopped ? "stop" : "length", promptTokens: promptIds.length, completionTokens: ids.length,
    ...(request.expertThreshold !== undefined ? { experts: expertUsage(model, routing!, request.expertThreshold) } : {}),
  } as const;
  if (!tokenizer) return { text: "", tokenIds: shown.map((t) => t.id), ...counts };
  const text = visibleText(tokenizer, ids, stop, droppedStop);
  const prompt = request.echo ? tokenizer.decode(promptIds, { skipUnknown: true }) : "";
  if (request.logprobs !== undefined && !logprobs) {
    logprobs = [...(request.echo ? await promptLogprobs(model, tokenizer, request, promptIds) : []), ...generatedLogprobs(tokenizer, request, shown, 0, shown.length)];
  }
  return {
    text: prompt + text, ...counts,
    ...(logprobs ? { logprobs } : {}),
    ...(request.routingLog ? { routing: pieceTexts(tokenizer, shown.map((t) => t.id)).map((token, i) => ({ token, layers: shown[i].routing! })) } : {}),
  };
}

function expertUsage(model: Model, r: ExpertRouting, threshold: number): ExpertUsage {
  const { activePerToken } = countParameters(model.config);
  const perExpert = 3 * model.config.intermediateSize * model.config.hiddenSize; // w1, w3, w2
  return { expert_threshold: threshold, active_params_per_token: activePerToken, active_params_saved_per_token: r.positions ? (r.dropped * perExpert) / r.positions : 0 };
}

/** Each token's piece of the decoded ids, so that the pieces add up to the decoded text. */
function pieceTexts(tokenizer: Tokenizer, ids: number[]): string[] {
  return ids.map((id, i) => pieceAfter(tokenizer, windowBefore(ids, i), id));
}

/** A streamed piece of the text, with the log-probabilities of the tokens it completes (when asked for). */
export interface StreamedPiece { text: string; logprobs?: TokenLogprob[] }

/**
 * Streams the text in pieces (with echo the prompt first); returns the finished completion (the same as
 * completeWithEngine's). With a scheduler the tokens come from its shared batch (the request must be `batchable`).
 */
export async function* streamCompletion(model: Model, request: EngineRequest, scheduler?: BatchScheduler): AsyncGenerator<StreamedPiece, EngineCompletion> {
  if (!model.tokenizer) throw new RequestError(`${model.checkpoint.dir} has no tokenizer.json, so it has no text to stream: send "stream": false`, "stream");
  const started = start(model, request, scheduler);
  const { promptIds, stop, generation } = started;
  const tokenizer = model.tokenizer;
  const scored = request.logprobs !== undefined;
  const logprobs: TokenLogprob[] = [];
  const echoed = request.echo ? tokenizer.decode(promptIds, { skipUnknown: true }) : "";
  if (request.echo) {
    const prompt = scored ? await promptLogprobs(model, tokenizer, request, promptIds) : undefined;
    logprobs.push(...(prompt ?? []));
    yield { text: echoed, ...(prompt ? { logprobs: prompt } : {}) };
  }
  const tokens: SourceToken[] = [];
  /** generated tokens whose log-probabilities were given out */
  let scoredCount = 0;
  const newLogprobs = (to: number): { logprobs?: TokenLogprob[] } => {
    if (!scored || to <= scoredCount) return {};
    const entries = generatedLogprobs(tokenizer, request, tokens, scoredCount, to);
    scoredCount = to;
    logprobs.push(...entries);
    return { logprobs: entries };
  };
  // the text of every token but the newest, which is shown one step late: it may be the end-of-sequence token that
  // the text leaves out; also held back: an incomplete UTF-8 character (IncrementalDecoder), and any tail that could
  // still grow into a stop string
  const text = new IncrementalDecoder(tokenizer, stop);
  let emitted = "";
  let cut = -1;
  for await (const token of generation) {
    if (tokens.length > 0 && cut < 0) {
      text.push(tokens[tokens.length - 1].id);
      cut = text.newStopAt();
    }
    tokens.push(token);
    const safe = cut >= 0 ? cut : text.length - heldBack(text.recent, stop);
    if (safe > emitted.length) {
      const piece = text.slice(emitted.length, safe);
      yield { text: piece, ...newLogprobs(tokens.length - 1) };
      emitted += piece;
    }
  }
  const rest = newLogprobs(shownTokens(generation, tokens).length);
  const done = await finished(model, request, started, tokens, scored ? logprobs : undefined);
  const generated = done.text.slice(echoed.length);
  const tail = generated.length > emitted.length && generated.startsWith(emitted) ? generated.slice(emitted.length) : "";
  if (tail || rest.logprobs) yield { text: tail, ...rest };
  return done;
}

/** The whole completion at once (the same as streamCompletion's), from the engine alone or from the scheduler's
 *  shared batch (the request must then be `batchable`). */
export async function completeWithEngine(model: Model, request: EngineRequest, scheduler?: BatchScheduler): Promise<EngineCompletion> {
  const started = start(model, request, scheduler);
  const tokens: SourceToken[] = [];
  for await (const token of started.generation) tokens.push(token);
  return finished(model, request, started, tokens);
}

/** Decoded text of the generated ids (without a final stop token), cut before the first stop string. */
function visibleText(tokenizer: Tokenizer, ids: number[], stop: string[], dropLast: boolean): string {
  const text = tokenizer.decode(dropLast ? ids.slice(0, -1) : ids, { skipUnknown: true });
  const at = firstIndexOf(text, stop);
  return at < 0 ? text : text.slice(0, at);
}

/** Length of the longest suffix of `text` that is a proper prefix of one of `tags` (text that may still become one). */
export function heldBack(text: string, tags: string[]): number {
  let n = 0;
  for (const s of tags) {
    for (let k = Math.min(s.length - 1, text.length); k > n; k--) {
      if (text.endsWith(s.slice(0, k))) {
        n = k;
        break;
      }
    }
  }
  return n;
}
