// An OpenAI-compatible HTTP server over the local engine (what vLLM and SGLang offer for the real M1):
// GET /v1/models, POST /v1/completions, POST /v1/chat/completions, with SSE streaming ("data: {…}\n\n", then
// "data: [DONE]"), and GET /metrics (how full the batch runs, the server's CPU time: ./metrics.ts). Requests
// decode together in one batch (continuous batching, ./scheduler.ts); those that need the engine to themselves
// (logprobs, echo, routing logs, an expert threshold) run alone between batch steps.
// A checkpoint without a tokenizer takes token-id prompts and answers them in the choice's `token_ids`.
// Chat answers are split into reasoning, content and tool calls by ./chat-output.ts, streamed or whole alike.
// Prompts longer than the server's limit (default: the model's max_position_embeddings) get 400, as serving engines
// do past their max model length. Bad requests get 400 with {"error": {message, type, param, code}}, a body not sent
// as JSON 415, unknown routes 404; the server keeps serving.
import http from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Model } from "../../engine/model.ts";
import { InputError, M1Error, TokenizerError } from "../../engine/errors.ts";
import { RequestError, parseBody, completionParams, chatParams, type SamplingParams, type ToolChoice } from "./requests.ts";
import { TOOL_CALLS_OPEN } from "../../engine/tool-calls.ts";
import { streamCompletion, completeWithEngine, chatPrompt, batchable, type EngineCompletion, type EngineRequest, type PromptFormat, type StreamedPiece } from "./completion.ts";
import { ChatOutput, splitChatAnswer, type ChatDelta, type ChatOutputOptions } from "./chat-output.ts";
import { chatLogprobs, completionLogprobs, type TokenLogprob } from "./logprobs.ts";
import { BatchScheduler } from "./scheduler.ts";
import { metricsText } from "./metrics.ts";

const MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface ServerOptions {
  /** Most requests decoding together (1: one at a time; default 64). */
  maxBatch?: number;
  /** Batches stepping side by side, each pass on a thread of its own while several have work (default 1: one batch,
   *  each pass over all cores; see kernel/openai/scheduler.ts). */
  lanes?: number;
  /** Longest prompt in tokens (default: the model's max_position_embeddings); longer ones get 400. */
  maxPromptTokens?: number;
  /** Chat answers give a leading <think>…</think> as `reasoning_content` (vLLM's `--reasoning-parser minimax_m1`). */
  reasoningParser?: boolean;
}

export class CompletionServer {
  readonly server: http.Server;
  readonly scheduler: BatchScheduler;
  private readonly created = Math.floor(Date.now() / 1000);

  readonly maxPromptTokens: number;
  readonly reasoningParser: boolean;

  constructor(private readonly model: Model, readonly name: string, options: ServerOptions = {}) {
    this.reasoningParser = options.reasoningParser ?? false;
    this.scheduler = new BatchScheduler(model, options.maxBatch ?? 64, options.lanes);
    this.maxPromptTokens = options.maxPromptTokens ?? model.config.maxPositionEmbeddings;
    if (!(Number.isSafeInteger(this.maxPromptTokens) && this.maxPromptTokens >= 1)) {
      throw new InputError(`maxPromptTokens must be an integer >= 1, got ${this.maxPromptTokens}`);
    }
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err) => sendError(res, err));
    });
  }

  /** Listens on 127.0.0.1 (port 0 picks a free one); resolves with the port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(err.code === "EADDRINUSE" ? new InputError(`port ${port} on 127.0.0.1 is already in use`) : err);
      this.server.once("error", onError);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const routes: Record<string, { method: string; handle: () => Promise<void> }> = {
      "/v1/models": { method: "GET", handle: async () => sendJson(res, 200, { object: "list", data: [{ id: this.name, object: "model", created: this.created, owned_by: "m1-workbench" }] }) },
      "/v1/completions": { method: "POST", handle: async () => this.completion(req, res, "text") },
      "/v1/chat/completions": { method: "POST", handle: async () => this.completion(req, res, "chat") },
      "/metrics": { method: "GET", handle: async () => sendText(res, metricsText(this.scheduler), "text/plain; version=0.0.4") },
    };
    const route = routes[url.pathname.replace(/\/+$/, "")];
    if (!route) throw new RequestError(`no route ${req.method} ${url.pathname} (have /v1/models, /v1/completions, /v1/chat/completions, /metrics)`, null, 404, "not_found");
    if (req.method !== route.method) throw new RequestError(`${url.pathname} takes ${route.method}, not ${req.method}`, null, 405, "method_not_allowed");
    await route.handle();
  }

  private async completion(req: http.IncomingMessage, res: http.ServerResponse, kind: "text" | "chat"): Promise<void> {
    const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/json") {
      throw new RequestError(`the request body must be sent as Content-Type: application/json, got ${type ? `"${type}"` : "none"}`, null, 415, "unsupported_media_type");
    }
    const body = parseBody(await readBody(req));
    let params: SamplingParams;
    let prompt: string | number[];
    let format: PromptFormat | null = null;
    let extra: { logprobs?: number; echo?: boolean } = {};
    let stop: string[];
    /** how a chat answer is split (thought, calls, content), and the text it starts with (a forced tool call) */
    let chat: { options: ChatOutputOptions; prefill: string } | null = null;
    if (kind === "text") {
      const p = completionParams(body, this.name);
      params = p;
      prompt = p.prompt;
      extra = { logprobs: p.logprobs, echo: p.echo };
      stop = p.stop;
    } else {
      const p = chatParams(body, this.name);
      params = p;
      const tools = p.toolChoice !== "none";
      const rendered = chatPrompt(this.model, p.messages, tools ? p.tools : []);
      chat = { options: { reasoning: this.reasoningParser, tools }, prefill: toolPrefill(p.toolChoice) };
      prompt = rendered.text + chat.prefill;
      format = rendered.format;
      extra = { logprobs: p.logprobs };
      // a named function gets its one call: the answer ends with the line of the call it was started with
      stop = typeof p.toolChoice === "object" ? [...p.stop, "\n"] : p.stop;
    }
    const aborted = new AbortController();
    // a client that leaves before its answer is written stops its generation (aborting after every answer would
    // build a DOMException and dispatch an event per request for nothing)
    res.on("close", () => {
      if (!res.writableEnded) aborted.abort();
    });
    const request: EngineRequest = {
      ...params, ...extra, prompt, stop, signal: aborted.signal, maxPromptTokens: this.maxPromptTokens, routingLog: params.routingLogs, expertThreshold: params.expertThreshold,
    };
    const respond = async (scheduler?: BatchScheduler) => {
      if (aborted.signal.aborted) return;
      const reply = new Reply(res, this.name, format, chat, extra.logprobs);
      if (!params.stream) return reply.whole(await completeWithEngine(this.model, request, scheduler));
      const stream = streamCompletion(this.model, request, scheduler);
      let next = await stream.next(); // bad input fails here, before any header is written
      reply.startStream();
      while (!next.done) {
        reply.piece(next.value);
        next = await stream.next();
      }
      reply.endStream(next.value, params.includeUsage);
    };
    if (batchable(request)) await respond(this.scheduler);
    else await this.scheduler.exclusive(() => respond());
  }
}

/** Writes one request's answer in the OpenAI shape of its kind (chat when `chat` is given): whole, or as SSE chunks. */
class Reply {
  private readonly id: string;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly output: ChatOutput | null;
  /** chat: log-probabilities of streamed tokens not yet sent (they go with the next chunk) */
  private unsent: TokenLogprob[] = [];
  /** completions: where the next streamed token starts in the choice's text */
  private offset = 0;

  constructor(
    private readonly res: http.ServerResponse, private readonly model: string, private readonly format: PromptFormat | null,
    private readonly chat: { options: ChatOutputOptions; prefill: string } | null, private readonly topLogprobs: number | undefined,
  ) {
    this.id = `${chat ? "chatcmpl" : "cmpl"}-${randomUUID()}`;
    this.output = chat ? new ChatOutput(chat.options) : null;
  }

  private base(object: string): Record<string, unknown> {
    return { id: this.id, object, created: this.created, model: this.model, ...(this.format ? { prompt_format: this.format } : {}) };
  }

  whole(c: EngineCompletion): void {
    const routing = c.routing ? { routing: c.routing } : {};
    let choice: Record<string, unknown>;
    if (this.chat) {
      const { reasoning, content, toolCalls } = splitChatAnswer(this.chat.prefill + c.text, this.chat.options);
      const message = {
        role: "assistant", content: toolCalls.length && !content ? null : content,
        ...(reasoning !== null ? { reasoning_content: reasoning } : {}), ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
      };
      choice = { index: 0, message, logprobs: c.logprobs ? chatLogprobs(c.logprobs) : null, finish_reason: toolCalls.length ? "tool_calls" : c.finishReason, ...routing };
    } else {
      const tokenIds = c.tokenIds ? { token_ids: c.tokenIds } : {}; // a checkpoint without a tokenizer answers in ids
      choice = { index: 0, text: c.text, ...tokenIds, logprobs: c.logprobs ? completionLogprobs(c.logprobs, this.topLogprobs!) : null, finish_reason: c.finishReason, ...routing };
    }
    sendJson(this.res, 200, { ...this.base(this.chat ? "chat.completion" : "text_completion"), choices: [choice], usage: usage(c) }, this.format);
  }

  startStream(): void {
    this.res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", ...formatHeader(this.format) });
    if (this.chat) {
      this.event([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
      this.deltas(this.output!.push(this.chat.prefill));
    }
  }

  piece(p: StreamedPiece): void {
    if (this.chat) {
      this.unsent.push(...(p.logprobs ?? []));
      this.deltas(this.output!.push(p.text));
      return;
    }
    const logprobs = p.logprobs ? completionLogprobs(p.logprobs, this.topLogprobs!, this.offset) : null;
    for (const e of p.logprobs ?? []) this.offset += e.token.length;
    this.event([{ index: 0, text: p.text, logprobs, finish_reason: null }]);
  }

  endStream(c: EngineCompletion, includeUsage: boolean): void {
    if (this.chat) {
      this.deltas(this.output!.end());
      const finish = this.output!.toolCalls.length ? "tool_calls" : c.finishReason;
      this.event([{ index: 0, delta: {}, logprobs: this.takeLogprobs(), finish_reason: finish }]);
    } else {
      this.event([{ index: 0, text: "", logprobs: null, finish_reason: c.finishReason }]);
    }
    if (includeUsage) this.event([], usage(c));
    this.res.end("data: [DONE]\n\n");
  }

  /** Chat deltas as chunks; the tokens' log-probabilities so far go with the first. */
  private deltas(deltas: ChatDelta[]): void {
    for (const delta of deltas) this.event([{ index: 0, delta, logprobs: this.takeLogprobs(), finish_reason: null }]);
  }

  private takeLogprobs(): ReturnType<typeof chatLogprobs> | null {
    if (!this.unsent.length) return null;
    const out = chatLogprobs(this.unsent);
    this.unsent = [];
    return out;
  }

  private event(choices: unknown[], usageField?: unknown): void {
    const object = this.chat ? "chat.completion.chunk" : "text_completion";
    this.res.write(`data: ${JSON.stringify({ ...this.base(object), choices, ...(usageField ? { usage: usageField } : {}) })}\n\n`);
  }
}

function usage(c: EngineCompletion) {
  return { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, total_tokens: c.promptTokens + c.completionTokens, ...c.experts };
}

/** "required" starts the answer with a call block, a named function with that function's call. */
function toolPrefill(choice: ToolChoice): string {
  if (choice === "required") return `${TOOL_CALLS_OPEN}\n`;
  if (typeof choice === "object") return `${TOOL_CALLS_OPEN}\n{"name": ${JSON.stringify(choice.name)}, "arguments": `;
  return "";
}

/** Chat prompts of a checkpoint without a chat template are the messages' contents joined by newlines: say so. */
function formatHeader(format: PromptFormat | null): Record<string, string> {
  return format ? { "x-m1-prompt-format": format === "concatenated" ? "concatenated (the checkpoint has no chat template)" : "chat_template" } : {};
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, format: PromptFormat | null = null): void {
  sendText(res, JSON.stringify(body), "application/json", status, formatHeader(format));
}

function sendText(res: http.ServerResponse, text: string, type: string, status = 200, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Errors become OpenAI-shaped JSON: request errors with their status, and 400 for what the engine rejects in a
 * request (ids outside the vocabulary, text the tokenizer cannot encode, messages the chat template refuses);
 * anything else 500.
 */
function sendError(res: http.ServerResponse, err: unknown): void {
  const known = err instanceof RequestError ? err : err instanceof InputError || err instanceof TokenizerError ? new RequestError(err.message) : null;
  const status = known?.status ?? 500;
  const error = {
    message: known ? known.message : `internal error: ${(err as Error)?.message ?? String(err)}`,
    type: status === 500 ? (err instanceof M1Error ? "engine_error" : "internal_error") : "invalid_request_error",
    param: known?.param ?? null,
    code: known?.code ?? null,
  };
  if (res.headersSent) {
    if (!res.writableEnded) res.end(`data: ${JSON.stringify({ error })}\n\ndata: [DONE]\n\n`);
    return;
  }
  sendJson(res, status, { error });
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestError(`the request body is over ${MAX_BODY_BYTES} bytes`, null, 413, "request_too_large"));
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
