// Runs a task against a backend: samples already in the store for this run are reused, the others are generated
// (up to the backend's concurrency at a time), their thought removed, graded and stored one by one. The run id
// hashes everything that decides a sample (items, grader, backend, generation settings), so rerunning the same
// command after an interruption resumes it.
import { createHash } from "node:crypto";
import { InputError } from "../../engine/errors.ts";
import type { Backend, EvalItem, JsonValue, Task } from "./types.ts";
import { ResultStore, type StoredSample } from "./store.ts";
import { splitThinking, opensThought } from "./thinking.ts";
import { terminalProgress, type ProgressSink, type ProgressState } from "./progress.ts";
import { RunResult, type RunSettings } from "./results.ts";

export interface RunOptions {
  /** an SQLite file (created if missing) or an open store; default: in memory, nothing kept */
  store?: ResultStore | string;
  thinkingBudget?: number;
  /** default: the task's, plus the thinking budget */
  maxTokens?: number;
  /** default 0: greedy */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** sampling seed; item i uses seed + i, so results do not depend on concurrency (default 0) */
  seed?: number;
  /** default: a bar on stderr; null: none */
  progress?: ProgressSink | null;
  signal?: AbortSignal;
}

export async function runTask(task: Task, backend: Backend, options: RunOptions = {}): Promise<RunResult> {
  const settings = runSettings(task, options);
  const runId = runKey(task, backend, settings);
  const store = options.store instanceof ResultStore ? options.store : new ResultStore(options.store ?? ":memory:");
  const progress = options.progress === undefined ? terminalProgress() : options.progress;
  try {
    store.beginRun(runId, task.name, backend.id, settings as unknown as JsonValue);
    const finished = store.finished(runId);
    const cached = task.items.filter((item) => finished.has(item.id)).map((item) => item.id);
    const pending = task.items.map((item, index) => ({ item, index })).filter(({ item }) => !finished.has(item.id));
    const computed: string[] = [];
    const failures: { itemId: string; error: string }[] = [];
    const started = Date.now();
    const state = (): ProgressState => {
      const scores = [...finished.values()].map((s) => s.score);
      return {
        label: task.name, total: task.items.length, done: finished.size, cached: cached.length, failed: failures.length,
        meanScore: scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null, elapsedMs: Date.now() - started,
      };
    };
    progress?.update(state());

    let next = 0;
    const worker = async () => {
      while (next < pending.length && !options.signal?.aborted) {
        const { item, index } = pending[next++];
        try {
          const sample = await runSample(task, backend, item, index, settings, options.signal);
          store.save(runId, sample);
          finished.set(item.id, sample);
          computed.push(item.id);
        } catch (e) {
          if (options.signal?.aborted) break;
          failures.push({ itemId: item.id, error: (e as Error).message });
        }
        progress?.update(state());
      }
    };
    await Promise.all(Array.from({ length: Math.min(backend.concurrency, pending.length) }, worker));
    progress?.finish(state());
    options.signal?.throwIfAborted();

    const samples = task.items.filter((item) => finished.has(item.id)).map((item) => finished.get(item.id)!);
    const groups = task.groups ?? [...new Set(task.items.map((item) => item.group ?? "all"))];
    const reference = task.reference?.(backend.modelName, settings.thinkingBudget) ?? null;
    return new RunResult(
      { runId, task: task.name, description: task.description, backend: backend.id, modelName: backend.modelName, settings, groups, groupTitle: task.groupTitle ?? "group", reference },
      samples, computed, cached, failures,
    );
  } finally {
    await task.grader.close?.();
    if (!(options.store instanceof ResultStore)) store.close();
  }
}

async function runSample(task: Task, backend: Backend, item: EvalItem, index: number, settings: RunSettings, signal: AbortSignal | undefined): Promise<StoredSample> {
  const t0 = performance.now();
  const completion = await backend.complete({
    prompt: item.prompt,
    maxTokens: settings.maxTokens,
    temperature: settings.temperature,
    topP: settings.topP,
    topK: settings.topK,
    seed: settings.seed + index,
    stop: settings.stop,
    thinkingBudget: settings.thinkingBudget,
    signal,
  });
  const latencyMs = performance.now() - t0;
  const split = splitThinking(completion.text, typeof item.prompt === "string" && opensThought(item.prompt));
  const grade = await task.grader.grade(split.answer, item);
  return {
    itemId: item.id,
    index,
    group: item.group ?? null,
    prompt: typeof item.prompt === "string" ? item.prompt : JSON.stringify(item.prompt),
    response: completion.text,
    thinking: [completion.reasoning, split.thinking].filter(Boolean).join("\n"),
    answer: split.answer,
    target: item.target,
    score: grade.score,
    extracted: grade.extracted,
    detail: grade.detail ?? (split.unfinished ? "thought not finished" : null),
    finishReason: completion.finishReason,
    promptTokens: completion.promptTokens,
    completionTokens: completion.completionTokens,
    latencyMs,
    finishedAt: new Date().toISOString(),
  };
}

function runSettings(task: Task, o: RunOptions): RunSettings {
  const maxTokens = o.maxTokens ?? task.generation.maxTokens + (o.thinkingBudget ?? 0);
  const temperature = o.temperature ?? 0;
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new InputError(`maxTokens must be an integer >= 1, got ${maxTokens}`);
  if (!(temperature >= 0)) throw new InputError(`temperature must be >= 0, got ${temperature}`);
  if (o.thinkingBudget !== undefined && !(Number.isInteger(o.thinkingBudget) && o.thinkingBudget >= 0)) throw new InputError(`thinkingBudget must be an integer >= 0`);
  return {
    maxTokens,
    temperature,
    ...(o.topP !== undefined ? { topP: o.topP } : {}),
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
    seed: o.seed ?? 0,
    stop: task.generation.stop ?? [],
    ...(o.thinkingBudget !== undefined ? { thinkingBudget: o.thinkingBudget } : {}),
  };
}

/** 16 hex digits of SHA-256 over what decides every sample of the run. */
function runKey(task: Task, backend: Backend, settings: RunSettings): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ task: task.name, grader: task.grader.name, backend: backend.id, settings }));
  for (const item of task.items) h.update(JSON.stringify([item.id, item.prompt, item.target, item.group ?? null, item.meta ?? null]));
  return h.digest("hex").slice(0, 16);
}
