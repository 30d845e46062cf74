// Any OpenAI-compatible endpoint (vLLM and SGLang serving MiniMax-M1, or `m1 serve`) as an eval backend:
// /v1/completions or /v1/chat/completions, several requests in flight, a timeout per attempt, and retries with
// exponential backoff (honouring Retry-After) on network errors, timeouts, 408, 429 and 5xx. Other 4xx answers
// are the request's fault and fail at once with the server's message.
import { InputError, M1Error } from "../../../engine/errors.ts";
import type { Backend, Completion, CompletionRequest } from "../types.ts";
import { requestBody, httpErrorMessage } from "../../../engine/remote.ts";
import { parseToolCalls, type ToolCall } from "../../../engine/tool-calls.ts";

export interface OpenAIBackendOptions {
  /** e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  model: string;
  api?: "completions" | "chat";
  concurrency?: number;
  /** attempts after the first (default 3) */
  retries?: number;
  /** per attempt (default 600 000 ms: long thoughts take long) */
  timeoutMs?: number;
  apiKey?: string;
  /** first backoff delay (default 500 ms), doubled per retry */
  backoffMs?: number;
  /** fields added to every request body (server extensions such as m1 serve's expert_threshold); part of the backend's id */
  extraBody?: Record<string, unknown>;
}

export class BackendError extends M1Error {}

export class OpenAIBackend implements Backend {
  readonly id: string;
  readonly concurrency: number;
  private readonly url: string;

  constructor(private readonly options: OpenAIBackendOptions) {
    const api = options.api ?? "completions";
    this.url = `${options.baseUrl.replace(/\/+$/, "")}/${api === "chat" ? "chat/completions" : "completions"}`;
    this.id = `openai:${this.url}#${options.model}${options.extraBody ? JSON.stringify(options.extraBody) : ""}`;
    this.concurrency = options.concurrency ?? 4;
    if (!(Number.isInteger(this.concurrency) && this.concurrency >= 1)) throw new InputError(`concurrency must be an integer >= 1, got ${this.concurrency}`);
  }

  /** the served model without its organisation ("MiniMaxAI/MiniMax-M1-80k" → "MiniMax-M1-80k"), as tables name it */
  get modelName(): string {
    return this.options.model.split("/").at(-1)!;
  }

  async complete(request: CompletionRequest): Promise<Completion> {
    const chat = this.options.api === "chat";
    if (!chat && typeof request.prompt !== "string") throw new InputError(`this task sends chat messages: use the chat API (api: "chat", --api chat) for ${this.options.baseUrl}`);
    const prompt = chat && typeof request.prompt === "string" ? [{ role: "user", content: request.prompt }] : request.prompt;
    const body = requestBody(this.options.model, prompt, {
      maxNewTokens: request.maxTokens,
      temperature: request.temperature,
      topP: request.topP,
      topK: request.topK,
      seed: request.seed,
      stopStrings: request.stop,
      thinkingBudget: request.thinkingBudget,
    }, false);
    const json = await this.post({ ...body, ...this.options.extraBody }, request.signal);
    const choice = (json.choices as Record<string, unknown>[] | undefined)?.[0];
    if (!choice) throw new BackendError(`${this.url}: the answer has no choices: ${JSON.stringify(json).slice(0, 300)}`);
    const message = choice.message as Record<string, unknown> | undefined;
    const text = chat ? (message?.content as string | null) ?? "" : (choice.text as string);
    if (typeof text !== "string") throw new BackendError(`${this.url}: the answer's choice has no text`);
    const usage = json.usage as Record<string, number> | undefined;
    const served = message?.tool_calls as ToolCall[] | undefined;
    const parsed = served?.length ? { content: text, toolCalls: served } : parseToolCalls(text);
    return {
      text: parsed.content,
      ...(parsed.toolCalls.length ? { toolCalls: parsed.toolCalls } : {}),
      finishReason: choice.finish_reason === "length" ? "length" : "stop",
      promptTokens: usage?.prompt_tokens ?? null,
      completionTokens: usage?.completion_tokens ?? null,
      reasoning: (message?.reasoning_content as string | undefined) ?? null,
    };
  }

  private async post(body: unknown, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    const retries = this.options.retries ?? 3;
    const timeoutMs = this.options.timeoutMs ?? 600_000;
    let delay = this.options.backoffMs ?? 500;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      let retryAfterMs: number | null = null;
      let failure: string;
      try {
        const attemptSignal = signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
        const res = await fetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json", ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}) },
          body: JSON.stringify(body),
          signal: attemptSignal,
        });
        const text = await res.text();
        if (res.ok) return JSON.parse(text);
        const message = httpErrorMessage(text);
        if (!(res.status === 408 || res.status === 429 || res.status >= 500)) throw new BackendError(`${this.url}: HTTP ${res.status}: ${message}`);
        failure = `HTTP ${res.status}: ${message}`;
        const after = Number(res.headers.get("retry-after"));
        if (after > 0) retryAfterMs = after * 1000;
      } catch (e) {
        if (e instanceof BackendError || signal?.aborted) throw e;
        failure = (e as Error).name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (e as Error).message;
      }
      if (attempt >= retries) throw new BackendError(`${this.url}: failed after ${attempt + 1} attempts; last: ${failure}`);
      await sleep(retryAfterMs ?? delay, signal);
      delay *= 2;
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
