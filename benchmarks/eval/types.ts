// The evaluation data model: a task is a list of items (each with its rendered prompt and target), a grader,
// and generation settings; a backend turns a prompt into a completion.
import type { ChatMessage } from "../../engine/tokenizer.ts";
import type { ToolCall } from "../../engine/tool-calls.ts";

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A raw completion prompt, or a chat conversation. */
export type Prompt = string | ChatMessage[];

export interface EvalItem {
  id: string;
  prompt: Prompt;
  /** the gold answer, as text */
  target: string;
  /** the bin this item is reported in (digits, context-length bin, depth …) */
  group?: string;
  /** what a grader needs beyond the target (e.g. MRCR's random prefix, multiple-choice letters) */
  meta?: Record<string, JsonValue>;
}

export interface Grade {
  /** in [0, 1] */
  score: number;
  /** what the grader read as the answer */
  extracted: string | null;
  detail?: string;
}

export interface Grader {
  readonly name: string;
  /** `answer` is the response with its thought removed */
  grade(answer: string, item: EvalItem): Grade | Promise<Grade>;
  close?(): Promise<void>;
}

/** Published numbers to plot beside a run's groups. */
export interface Reference {
  label: string;
  source: string;
  /** group → score in [0, 1] */
  points: Record<string, number>;
}

export interface GenerationSettings {
  /** tokens for the answer, and for the thought when no thinking budget is set (the runner adds the budget) */
  maxTokens: number;
  stop?: string[];
}

export interface Task {
  name: string;
  description: string;
  items: EvalItem[];
  grader: Grader;
  generation: GenerationSettings;
  /** order in which groups are reported (default: first appearance) */
  groups?: string[];
  /** what the groups are, for axis titles (default "group") */
  groupTitle?: string;
  reference?: (model: string, thinkingBudget: number | undefined) => Reference | null;
  /** how the paper ran it (sampling, samples per item); run options override it */
  protocol?: Protocol;
  /** the row of the paper's Table 2 this task reproduces (e.g. "AIME 2024") */
  paperRow?: string;
}

/** Sampling and repetition of a task as a paper ran it. */
export interface Protocol {
  temperature: number;
  topP?: number;
  /** completions per item, each graded; the item's score is their mean */
  samples: number;
}

export interface CompletionRequest {
  prompt: Prompt;
  maxTokens: number;
  /** 0 (or `greedy`) picks the most likely token */
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
  thinkingBudget?: number;
  signal?: AbortSignal;
}

export type FinishReason = "stop" | "length";

export interface Completion {
  text: string;
  finishReason: FinishReason;
  promptTokens: number | null;
  completionTokens: number | null;
  /** thought returned apart from the text (vLLM's reasoning parser: `reasoning_content`) */
  reasoning?: string | null;
  /** function calls: the server's `tool_calls`, or the <tool_calls> block of the text (M1's format), which then leaves the text */
  toolCalls?: ToolCall[];
}

export interface Backend {
  /** what produced the completions (model and where it runs): part of the cache key */
  readonly id: string;
  /** the model's name, as published results name it (e.g. mini-80k, MiniMax-M1-80k) */
  readonly modelName: string;
  /** most requests in flight at once */
  readonly concurrency: number;
  complete(request: CompletionRequest): Promise<Completion>;
  close?(): Promise<void>;
}
