// The local engine as an eval backend: one request at a time (the engine is single-threaded), through the same
// completion code as `m1 serve`, so a run here and a run over HTTP against `m1 serve` give the same text.
import type { Model } from "../../../engine/model.ts";
import { loadLocalModel } from "../../registry.ts";
import { completeWithEngine, chatPrompt } from "../../../kernel/openai/completion.ts";
import type { Backend, Completion, CompletionRequest } from "../types.ts";
import { parseToolCalls } from "../../../engine/tool-calls.ts";

export class LocalBackend implements Backend {
  readonly concurrency = 1;
  readonly id: string;

  constructor(readonly model: Model, readonly modelName: string) {
    this.id = `local:${modelName}`;
  }

  /** A registry name (mini-40k, mini-80k, a downloaded MiniMax-M1-80k …) or a checkpoint directory. */
  static async load(checkpoint: string): Promise<LocalBackend> {
    const { name, model } = await loadLocalModel(checkpoint);
    return new LocalBackend(model, name);
  }

  async complete(request: CompletionRequest): Promise<Completion> {
    const prompt = typeof request.prompt === "string" ? request.prompt : chatPrompt(this.model, request.prompt).text;
    const c = await completeWithEngine(this.model, { ...request, prompt });
    const { content, toolCalls } = parseToolCalls(c.text);
    return { text: content, ...(toolCalls.length ? { toolCalls } : {}), finishReason: c.finishReason, promptTokens: c.promptTokens, completionTokens: c.completionTokens };
  }
}
