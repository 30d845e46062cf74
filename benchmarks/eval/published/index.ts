// The published benchmarks of Table 2 that need no outside environment, by name (as `m1 eval NAME --data FILE`
// takes them), each with where its file comes from.
import { InputError } from "../../../engine/errors.ts";
import type { Backend, Task } from "../types.ts";
import { aimeTask, math500Task } from "./math.ts";
import { gpqaDiamondTask, longBenchV2Task, mmluProTask } from "./choice.ts";
import { zebraLogicTask } from "./zebra.ts";
import { openaiMrcrTask } from "./mrcr.ts";
import { liveCodeBenchTask } from "./livecodebench.ts";
import { multiChallengeTask, simpleQaTask } from "./judged.ts";

export interface PublishedLoadOptions {
  limit?: number;
  /** instead of MiniMax's recommended system prompt (null: none) */
  systemPrompt?: string | null;
  /** the judge model, for simpleqa and multichallenge */
  judge?: Backend;
  /** OpenAI-MRCR: leave out longer conversations (≈ tokens) */
  maxContextTokens?: number;
}

interface Benchmark {
  /** where users download the file */
  source: string;
  load(file: string, o: PublishedLoadOptions): Promise<Task>;
}

function needJudge(name: string, o: PublishedLoadOptions): Backend {
  if (!o.judge) throw new InputError(`${name} is graded by a judge model: give --judge-endpoint URL --judge-model NAME`);
  return o.judge;
}

export const PUBLISHED: Record<string, Benchmark> = {
  aime2024: { source: "huggingface.co/datasets/HuggingFaceH4/aime_2024 (train parquet)", load: (f, o) => aimeTask(f, 2024, o) },
  aime2025: { source: "huggingface.co/datasets/opencompass/AIME2025 (aime2025-I.jsonl, aime2025-II.jsonl)", load: (f, o) => aimeTask(f, 2025, o) },
  "math-500": { source: "huggingface.co/datasets/HuggingFaceH4/MATH-500 (test.jsonl)", load: (f, o) => math500Task(f, o) },
  "gpqa-diamond": { source: "huggingface.co/datasets/Idavidrein/gpqa (gated; gpqa_diamond.csv)", load: (f, o) => gpqaDiamondTask(f, o) },
  "mmlu-pro": { source: "huggingface.co/datasets/TIGER-Lab/MMLU-Pro (data/test-*.parquet)", load: (f, o) => mmluProTask(f, o) },
  zebralogic: { source: "huggingface.co/datasets/allenai/ZebraLogicBench (gated; grid_mode/test-*.parquet)", load: (f, o) => zebraLogicTask(f, o) },
  "openai-mrcr": { source: "huggingface.co/datasets/openai/mrcr ({2,4,8}needle/*.parquet)", load: (f, o) => openaiMrcrTask(f, { limit: o.limit, maxTokens: o.maxContextTokens }) },
  "longbench-v2": { source: "huggingface.co/datasets/THUDM/LongBench-v2 (data.json)", load: (f, o) => longBenchV2Task(f, o) },
  livecodebench: { source: "huggingface.co/datasets/livecodebench/code_generation_lite (test*.jsonl; release v6 covers 2024-08 to 2025-05)", load: (f, o) => liveCodeBenchTask(f, o) },
  simpleqa: { source: "openaipublic.blob.core.windows.net/simple-evals/simple_qa_test_set.csv", load: (f, o) => simpleQaTask(f, { ...o, judge: needJudge("simpleqa", o) }) },
  multichallenge: { source: "github.com/ekwinox117/multi-challenge (data/benchmark_questions.jsonl)", load: (f, o) => multiChallengeTask(f, { ...o, judge: needJudge("multichallenge", o) }) },
};

export const PUBLISHED_NAMES = Object.keys(PUBLISHED);

export async function loadPublished(name: string, file: string, options: PublishedLoadOptions = {}): Promise<Task> {
  const b = PUBLISHED[name];
  if (!b) throw new InputError(`no published benchmark "${name}" (have ${PUBLISHED_NAMES.join(", ")})`);
  return b.load(file, options);
}
