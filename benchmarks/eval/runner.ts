// Runs a task against a backend: each item is asked `samples` times (the task protocol's number unless the options
// say otherwise; sample j of the run uses seed + j); samples already in the store for this run are reused, the others are generated
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
  /** default: the task's protocol, else 0 (greedy) */
  temperature?: number;
  /** completions per item (default: the task's protocol, else 1); each is graded, the item's score is their mean */
  samples?: number;
  topP?: number;
  topK?: number;
  /** sampling seed; sample j of the run uses seed + j, so results do not depend on concurrency (default 0) */
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
    const units = sampleUnits(task.items, settings.samples ?? 1);
    const cached = units.filter((u) => finished.has(u.id)).map((u) => u.id);
    const pending = units.filter((u) => !finished.has(u.id));
    const computed: string[] = [];
    const failures: { itemId: string; error: string }[] = [];
    const started = Date.now();
    const state = (): ProgressState => {
      const scores = [...finished.values()].map((s) => s.score);
      return {
        label: task.name, total: units.length, done: finished.size, cached: cached.length, failed: failures.length,
        meanScore: scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null, elapsedMs: Date.now() - started,
      };
    };
    progress?.update(state());

    let next = 0;
    const worker = async () => {
      while (next < pending.length && !options.signal?.aborted) {
        const unit = pending[next++];
        try {
          const sample = await runSample(task, backend, unit, settings, options.signal);
          store.save(runId, sample);
          finished.set(unit.id, sample);
          computed.push(unit.id);
        } catch (e) {
          if (options.signal?.aborted) break;
          failures.push({ itemId: unit.id, error: (e as Error).message });
        }
        progress?.update(state());
      }
    };
    await Promise.all(Array.from({ length: Math.min(backend.concurrency, pending.length) }, worker));
    progress?.finish(state());
    options.signal?.throwIfAborted();

    const samples = units.filter((u) => finished.has(u.id)).map((u) => finished.get(u.id)!);
    const groups = task.groups ?? [...new Set(task.items.map((item) => item.group ?? "all"))];
    const reference = task.reference?.(backend.modelName, settings.thinkingBudget) ?? null;
    return new RunResult(
      { runId, task: task.name, description: task.description, backend: backend.id, modelName: backend.modelName, settings, groups, groupTitle: task.groupTitle ?? "group", reference, paperRow: task.paperRow ?? null },
      samples, computed, cached, failures,
    );
  } finally {
    await task.grader.close?.();
    if (!(options.store instanceof ResultStore)) store.close();
  }
}

/** One completion to make: sample k of an item; its id is the item's (with "#k" when items have several samples). */
interface SampleUnit { id: string; item: EvalItem; index: number }

function sampleUnits(items: EvalItem[], samples: number): SampleUnit[] {
  return items.flatMap((item, i) => Array.from({ length: samples }, (_, k) => ({ id: samples > 1 ? `${item.id}#${k}` : item.id, item, index: i * samples + k })));
}

async function runSample(task: Task, backend: Backend, { id, item, index }: SampleUnit, settings: RunSettings, signal: AbortSignal | undefined): Promise<StoredSample> {
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
    itemId: id,
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
  const temperature = o.temperature ?? task.protocol?.temperature ?? 0;
  const topP = o.topP ?? task.protocol?.topP;
  const samples = o.samples ?? task.protocol?.samples ?? 1;
  if (!(Number.isInteger(samples) && samples >= 1)) throw new InputError(`samples must be an integer >= 1, got ${samples}`);
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new InputError(`maxTokens must be an integer >= 1, got ${maxTokens}`);
  if (!(temperature >= 0)) throw new InputError(`temperature must be >= 0, got ${temperature}`);
  if (o.thinkingBudget !== undefined && !(Number.isInteger(o.thinkingBudget) && o.thinkingBudget >= 0)) throw new InputError(`thinkingBudget must be an integer >= 0`);
  return {
    maxTokens,
    temperature,
    ...(topP !== undefined ? { topP } : {}),
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
    seed: o.seed ?? 0,
    stop: task.generation.stop ?? [],
    ...(o.thinkingBudget !== undefined ? { thinkingBudget: o.thinkingBudget } : {}),
    ...(samples > 1 ? { samples } : {}),
  };
}

/** 16 hex digits of SHA-256 over what decides every sample of the run. */
function runKey(task: Task, backend: Backend, settings: RunSettings): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ task: task.name, grader: task.grader.name, backend: backend.id, settings }));
  for (const item of task.items) h.update(JSON.stringify([item.id, item.prompt, item.target, item.group ?? null, item.meta ?? null]));
  return h.digest("hex").slice(0, 16);
}
