// `m1 eval`: runs a built-in suite, a published benchmark's file (`--data`), a task spec (.json) or an
// lm-evaluation-harness task (.yaml) against the local engine or an OpenAI-compatible endpoint; per-sample
// results go to an SQLite file so that a rerun of the same command resumes; prints the summary as a markdown
// table (or JSON), with Table 2 beside it for a published benchmark.
import fs from "node:fs";
import { tableToIPC } from "apache-arrow";
import { InputError } from "../../engine/errors.ts";
import { parseFlags, type FlagValues } from "./args.ts";
import { runTask } from "../../benchmarks/eval/runner.ts";
import { LocalBackend } from "../../benchmarks/eval/backends/local.ts";
import { OpenAIBackend } from "../../benchmarks/eval/backends/openai.ts";
import { builtinSuite, SUITES } from "../../benchmarks/eval/suites/index.ts";
import { loadTaskFile } from "../../benchmarks/eval/task-file.ts";
import { importLmEvalTask } from "../../benchmarks/eval/lm-eval.ts";
import { loadPublished, PUBLISHED_NAMES } from "../../benchmarks/eval/published/index.ts";
import type { Backend, Task } from "../../benchmarks/eval/types.ts";
import { resolveCheckpoint } from "../../benchmarks/registry.ts";

export const EVAL_USAGE = `m1 eval <${SUITES.join("|")}|${PUBLISHED_NAMES.join("|")} --data FILE|task.json|lm-eval-task.yaml>
        (--model CHECKPOINT | --endpoint URL --model SERVED_NAME [--api completions|chat] [--concurrency N] [--retries N] [--timeout-ms MS])
        [--judge-endpoint URL --judge-model NAME] [--samples N] [--price-in USD_PER_M --price-out USD_PER_M] [--max-context-tokens N]
        [--db results.sqlite] [--thinking-budget N] [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]
        [--n PER_CELL] [--digits 1,2,3] [--format scratchpad|natural] [--lengths 1000,4000] [--depths 0,0.5,1]
        [--turns 8,32] [--needles 2|4|8] [--pairs 8,32] [--data FILE.jsonl] [--fewshot-data FILE.jsonl] [--num-fewshot K]
        [--filter NAME] [--limit N] [--arrow samples.arrow] [--json] [--quiet]`;

const FLAGS = {
  model: { type: "string" }, endpoint: { type: "string" }, api: { type: "string" }, concurrency: { type: "uint", min: 1 },
  retries: { type: "uint" }, "timeout-ms": { type: "uint", min: 1 }, db: { type: "string" }, "thinking-budget": { type: "uint" },
  "max-tokens": { type: "uint", min: 1 }, temperature: { type: "number", min: 0 }, "top-p": { type: "number" }, "top-k": { type: "int", min: 1 },
  seed: { type: "int" }, n: { type: "uint", min: 1 }, digits: { type: "uints" }, format: { type: "string" }, lengths: { type: "uints" },
  depths: { type: "numbers" }, turns: { type: "uints" }, needles: { type: "uint" }, pairs: { type: "uints" }, data: { type: "string" },
  "fewshot-data": { type: "string" }, "num-fewshot": { type: "uint" }, filter: { type: "string" }, limit: { type: "uint" },
  arrow: { type: "string" }, json: { type: "boolean" }, quiet: { type: "boolean" }, samples: { type: "uint", min: 1 },
  "judge-endpoint": { type: "string" }, "judge-model": { type: "string" }, "price-in": { type: "number", min: 0 }, "price-out": { type: "number", min: 0 },
  "max-context-tokens": { type: "uint", min: 1 },
} as const;
type Values = FlagValues<typeof FLAGS>;

export async function evaluate(args: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(args, FLAGS);
  if (positionals.length !== 1) throw new InputError(`expected one suite or task file, got ${positionals.length ? positionals.join(" ") : "none"}\nusage: ${EVAL_USAGE}`);
  if (!v.model) throw new InputError(`--model is required (a checkpoint, or with --endpoint the served model name)\nusage: ${EVAL_USAGE}`);
  const task = await loadTask(positionals[0], v);
  const backend = await makeBackend(v);
  const result = await runTask(task, backend, {
    store: v.db,
    thinkingBudget: v["thinking-budget"],
    maxTokens: v["max-tokens"],
    temperature: v.temperature,
    topP: v["top-p"],
    topK: v["top-k"],
    seed: v.seed,
    samples: v.samples,
    progress: v.quiet ? null : undefined,
  });
  if (v.arrow) fs.writeFileSync(v.arrow, tableToIPC(result.toArrow(), "file"));
  const priceIn = v["price-in"];
  const priceOut = v["price-out"];
  if ((priceIn === undefined) !== (priceOut === undefined)) throw new InputError("--price-in and --price-out go together (US dollars per million tokens)");
  const cost = priceIn === undefined ? null : result.cost({ inputPerMillion: priceIn, outputPerMillion: priceOut! });
  if (v.json) process.stdout.write(JSON.stringify({ ...(result.toJSON() as object), ...(cost !== null ? { cost_usd: cost } : {}) }) + "\n");
  else {
    const paper = result.paperComparison();
    process.stdout.write(result.markdown() + (cost !== null ? `\ncost: $${cost.toFixed(4)}\n` : "") + (paper ? `\n${paper.text()}` : ""));
  }
  return result.failures.length ? 1 : 0;
}

async function loadTask(what: string, v: Values): Promise<Task> {
  const limit = v.limit;
  if (PUBLISHED_NAMES.includes(what)) {
    if (!v.data) throw new InputError(`--data is required for ${what}: the benchmark's file as published (jsonl, json, csv or parquet; benchmarks/README.md says where to get it)`);
    if (v["judge-endpoint"] && !v["judge-model"]) throw new InputError("--judge-model is required with --judge-endpoint");
    const judge = v["judge-endpoint"] ? new OpenAIBackend({ baseUrl: v["judge-endpoint"], model: v["judge-model"]!, api: "chat", apiKey: process.env.JUDGE_API_KEY ?? process.env.OPENAI_API_KEY }) : undefined;
    return loadPublished(what, v.data, { limit, judge, maxContextTokens: v["max-context-tokens"] });
  }
  if (/\.ya?ml$/.test(what)) {
    if (!v.data) throw new InputError(`--data is required for an lm-evaluation-harness task (a JSONL file of its evaluation split)`);
    return importLmEvalTask(what, { data: v.data, fewshotData: v["fewshot-data"], numFewshot: v["num-fewshot"], filter: v.filter, limit });
  }
  if (what.endsWith(".json")) return loadTaskFile(what, { limit });
  const task = builtinSuite(what, {
    n: v.n, seed: v.seed, digits: v.digits, format: v.format, lengths: v.lengths, depths: v.depths, turns: v.turns,
    needles: v.needles, pairs: v.pairs,
  });
  return limit === undefined ? task : { ...task, items: task.items.slice(0, limit) };
}

/** --endpoint, or a registry entry that is an endpoint (the real M1 with M1_ENDPOINT set): the OpenAI backend; else local weights. */
async function makeBackend(v: Values): Promise<Backend> {
  if (v.api !== undefined && v.api !== "completions" && v.api !== "chat") throw new InputError(`--api must be "completions" or "chat", got "${v.api}"`);
  const remote = { api: v.api as "completions" | "chat" | undefined, concurrency: v.concurrency, retries: v.retries, timeoutMs: v["timeout-ms"] };
  if (v.endpoint) return new OpenAIBackend({ baseUrl: v.endpoint, model: v.model!, apiKey: process.env.OPENAI_API_KEY, ...remote });
  const { source } = resolveCheckpoint(v.model!);
  if (source.kind === "endpoint") return new OpenAIBackend({ baseUrl: source.baseUrl, model: source.model, apiKey: source.apiKey, ...remote });
  for (const k of ["api", "concurrency", "retries", "timeout-ms"] as const) if (v[k] !== undefined) throw new InputError(`--${k} applies to endpoints only`);
  return LocalBackend.load(v.model!);
}
