/**
 * Generation on an OpenAI-compatible endpoint (how vLLM and SGLang serve the real MiniMax-M1, and `m1 serve`):
 * streamed /v1/completions or /v1/chat/completions, read as server-sent events.
 */
import { M1Error, InputError } from "./errors.ts";
import type { ChatMessage } from "./tokenizer.ts";
import type { GenerateOptions } from "./generate.ts";

export interface EndpointOptions {
  /** e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  model: string;
  apiKey?: string;
}

/** The generation options an OpenAI-compatible endpoint takes (same meaning as for the local engine);
 *  `thinkingBudget` is honoured by `m1 serve` (vLLM and SGLang ignore unknown fields). */
export type RemoteGenerateOptions = Pick<GenerateOptions,
  "maxNewTokens" | "temperature" | "topP" | "topK" | "seed" | "stopStrings" | "thinkingBudget" | "signal">;

export class EndpointError extends M1Error {}

/** The JSON body of a /v1/completions (text prompt) or /v1/chat/completions (messages) request. */
export function requestBody(model: string, prompt: string | ChatMessage[], o: RemoteGenerateOptions, stream: boolean): Record<string, unknown> {
  return {
    model,
    ...(typeof prompt === "string" ? { prompt } : { messages: prompt }),
    ...(stream ? { stream: true } : {}),
    max_tokens: o.maxNewTokens ?? 256,
    ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
    ...(o.topP !== undefined ? { top_p: o.topP } : {}),
    ...(o.topK !== undefined ? { top_k: o.topK } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.stopStrings?.length ? { stop: o.stopStrings } : {}),
    ...(o.thinkingBudget !== undefined ? { thinking_budget: o.thinkingBudget } : {}),
  };
}

/** An OpenAI-style error answer's message (`{"error": {"message": ...}}`), else the start of the text. */
export function httpErrorMessage(text: string): string {
  try {
    return JSON.parse(text)?.error?.message ?? text.slice(0, 300);
  } catch {
    return text.slice(0, 300);
  }
}

/** POSTs JSON to `url` and yields the `data:` payloads of its event stream until [DONE]. */
export async function* postEventStream(url: string, body: unknown, apiKey: string | undefined, signal?: AbortSignal): AsyncGenerator<Record<string, unknown>> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok || !res.body) {
    throw new EndpointError(`${url}: HTTP ${res.status}: ${httpErrorMessage(await res.text())}`);
  }
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

/** Text generation on an endpoint: stream pieces of text, or await the whole. */
export class RemoteGeneration implements AsyncIterable<{ text: string; index: number }> {
  text = "";
  stopReason: "stop" | "length" | null = null;
  private started = false;

  constructor(private readonly endpoint: EndpointOptions, private readonly prompt: string | ChatMessage[], private readonly options: RemoteGenerateOptions) {}

  async *[Symbol.asyncIterator](): AsyncIterator<{ text: string; index: number }> {
    if (this.started) throw new InputError("a generation can be iterated once");
    this.started = true;
    const chat = typeof this.prompt !== "string";
    const body = requestBody(this.endpoint.model, this.prompt, this.options, true);
    const url = `${this.endpoint.baseUrl.replace(/\/+$/, "")}/${chat ? "chat/completions" : "completions"}`;
    let index = 0;
    for await (const event of postEventStream(url, body, this.endpoint.apiKey, this.options.signal)) {
      const choice = (event.choices as Record<string, unknown>[] | undefined)?.[0];
      if (!choice) continue;
      const delta = chat ? ((choice.delta as Record<string, unknown> | undefined)?.content as string | undefined) : (choice.text as string | undefined);
      if (choice.finish_reason) this.stopReason = choice.finish_reason === "length" ? "length" : "stop";
      if (delta) {
        this.text += delta;
        yield { text: delta, index: index++ };
      }
    }
  }

  async result(): Promise<{ text: string; stopReason: "stop" | "length" | null }> {
    for await (const _ of this) {
      // draining fills text
    }
    return { text: this.text, stopReason: this.stopReason };
  }
}
