/**
 * The experiment of docs/rl.md: CISPO, DAPO and GRPO from one starting checkpoint with equal rollout budgets, several
 * seeds each, through the staged window; every `--eval-every` steps the held-out exact-answer accuracy per digit count
 * (greedy and at temperature 1). Each run lives in its own directory under --runs (the loop's checkpoints, so a
 * killed run continues with --resume, and `result.json`: its evaluations so far); --shard I/N runs every N-th run
 * (the runs ordered seed by seed), so N processes share the work. Every process ends by collecting all runs found
 * under --runs into --out: compare-evals.arrow (one row per run, step, digit count, decoding), compare-steps-RUN.arrow
 * (each step's training metrics) and compare-clipped-tokens.arrow (the tokens PPO-style clipping dropped).
 *
 *   node --import tsx benchmarks/rl/compare.ts --from PATH [--objectives cispo,dapo,grpo] [--seeds 0,1,2] [--steps 20]
 *        [--stages 48:7] [--stage-steps 20] [--batch 4] [--group 8] [--rounds 4] [--lr 1e-4] [--max-grad-norm 1]
 *        [--reward exact|digits] [--eval-every 5] [--eval-digits 6,7,8] [--eval-n 16] [--runs runs/compare]
 *        [--threads 1] [--shard 0/1] [--resume] [--collect-only] [--thresholds 7:0.8,8:0.3] [--out benchmarks/rl/results]
 */
import fs from "node:fs";
import path from "node:path";
import { tableFromArrays, tableToIPC } from "apache-arrow";
import * as native from "../../native/index.ts";
import { parseFlags } from "../../kernel/cli/args.ts";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { TrainingLoop, type StepMetrics } from "../../engine/rl/train.ts";
import { EnginePolicy } from "../../engine/rl/engine-policy.ts";
import { parseStages, staged } from "../../engine/rl/recipes.ts";
import { exactAnswer, answerDigitCredit } from "../../engine/rl/rewards.ts";
import { additionProblems } from "../../engine/rl/tasks.ts";
import { rollout } from "../../engine/rl/rollout.ts";
import { metricsTable, droppedTokensTable } from "../../engine/rl/metrics.ts";
import { OBJECTIVES, type ObjectiveName } from "../../engine/rl/objectives.ts";
import type { Model } from "../../engine/model.ts";
import { InputError, M1Error } from "../../engine/errors.ts";

const { values } = parseFlags(process.argv.slice(2), {
  from: { type: "string" }, objectives: { type: "string" }, seeds: { type: "uints" }, steps: { type: "uint", min: 1 },
  stages: { type: "string" }, "stage-steps": { type: "uint", min: 1 }, batch: { type: "uint", min: 1 }, group: { type: "uint", min: 1 },
  rounds: { type: "uint", min: 1 }, lr: { type: "number", min: 0 }, "max-grad-norm": { type: "number", min: 0 }, reward: { type: "string" },
  "eval-every": { type: "uint", min: 1 }, "eval-digits": { type: "uints" }, "eval-n": { type: "uint", min: 1 },
  thresholds: { type: "string" }, threads: { type: "uint", min: 1 }, runs: { type: "string" }, shard: { type: "string" }, resume: { type: "boolean" }, "collect-only": { type: "boolean" }, out: { type: "string" },
});
native.setThreads(values.threads ?? 1);
const from = values.from ?? "mini-40k";
const objectives = (values.objectives ?? "cispo,dapo,grpo").split(",") as ObjectiveName[];
for (const o of objectives) if (!OBJECTIVES.includes(o)) throw new InputError(`--objectives: ${o} is not one of ${OBJECTIVES.join(", ")}`);
const seeds = values.seeds ?? [0];
const totalSteps = values.steps ?? 20;
const stages = parseStages(values.stages ?? "48:7", values["stage-steps"] ?? 20);
const budget = (step: number) => staged(stages).thinkingBudget(step);
const rewards = { exact: exactAnswer, digits: answerDigitCredit };
const reward = rewards[(values.reward ?? "exact") as keyof typeof rewards];
if (!reward) throw new InputError(`--reward must be exact or digits, got ${values.reward}`);
const evalEvery = values["eval-every"] ?? 5;
const evalDigits = values["eval-digits"] ?? [6, 7, 8];
const evalN = values["eval-n"] ?? 16;
const runsDir = path.resolve(values.runs ?? "runs/compare");
const outDir = values.out ?? "benchmarks/rl/results";
/** "7:0.8,8:0.3": held-out t=1 accuracy levels per digit count for the steps-to-threshold table */
const thresholds = (values.thresholds ?? "7:0.8,8:0.3").split(",").map((t) => {
  const m = /^(\d+):(0?\.\d+|1)$/.exec(t);
  if (!m) throw new InputError(`--thresholds: "${t}" is not DIGITS:LEVEL with a level in (0, 1] (e.g. 7:0.8)`);
  return { digits: Number(m[1]), level: Number(m[2]) };
});
const shard = /^(\d+)\/(\d+)$/.exec(values.shard ?? "0/1");
if (!shard || Number(shard[1]) >= Number(shard[2])) throw new InputError(`--shard must be I/N with 0 <= I < N, got ${values.shard}`);

interface Evaluation { run: string; objective: string; seed: number; step: number; digits: number; decoding: string; accuracy: number; length: number }
/** What a run has produced so far: its evaluations, and why it stopped early (a diverged run is a result too). */
interface RunResult { objective: string; seed: number; evals: Evaluation[]; stopped?: string }

/** Held-out exact accuracy and mean response length per digit count, greedy and at temperature 1 (a stream of its own per digit count). */
async function evaluate(model: Model, run: string, objective: string, seed: number, step: number, digitCounts = evalDigits): Promise<Evaluation[]> {
  const out: Evaluation[] = [];
  for (const digits of digitCounts) {
    const problems = additionProblems(new Rng(999_000 + digits), [digits], evalN);
    for (const decoding of ["greedy", "t1"] as const) {
      const b = budget(Math.max(0, step - 1));
      const outs = await rollout(model, problems.map((p) => p.prompt), {
        groupSize: 1, seed: 7, ...(decoding === "greedy" ? { greedy: true } : { temperature: 1 }), thinkingBudget: b, maxNewTokens: b + digits + 4,
      });
      const accuracy = outs.reduce((s, o) => s + exactAnswer(problems[o.group], { text: o.text, tokens: 0, truncated: false }), 0) / outs.length;
      const length = outs.reduce((s, o) => s + o.completion.length, 0) / outs.length;
      out.push({ run, objective, seed, step, digits, decoding, accuracy, length });
    }
  }
  return out;
}

async function train(objective: ObjectiveName, seed: number): Promise<void> {
  const run = `${objective}-seed${seed}`;
  const dir = path.join(runsDir, run);
  const resultFile = path.join(dir, "result.json");
  fs.mkdirSync(dir, { recursive: true });
  const { model } = await loadLocalModel(from); // a fresh copy per run
  const policy = new EnginePolicy(model, { lr: values.lr ?? 1e-4, betas: [0.9, 0.95], eps: 1e-15, maxGradNorm: values["max-grad-norm"] ?? 1 });
  const maxBudget = Math.max(...stages.map((s) => s.budget));
  const maxDigits = Math.max(...stages.flatMap((s) => s.digits));
  const trainer = new TrainingLoop(policy, {
    mode: "rl", objective, seed, steps: totalSteps, batchSize: values.batch ?? 4, groupSize: values.group ?? 8, rounds: values.rounds ?? 4,
    temperature: 1, maxNewTokens: maxBudget + maxDigits + 4, ...staged(stages), reward, verifier: exactAnswer, dynamicSampling: true,
    repetition: { run: maxBudget + maxDigits + 3, probability: 0.99 }, checkpointEvery: evalEvery,
  }, dir);
  let result: RunResult = { objective, seed, evals: [] };
  if (values.resume && trainer.resume()) {
    result = JSON.parse(fs.readFileSync(resultFile, "utf8")) as RunResult;
    if (result.stopped) return;
    result.evals = result.evals.filter((e) => e.step <= trainer.step); // evaluations after the checkpoint are recomputed
    process.stderr.write(`${run}: resumed at step ${trainer.step}\n`);
    // a run continued with more --eval-digits: the checkpoint's model is evaluated on the new ones too
    const missing = evalDigits.filter((d) => !result.evals.some((e) => e.step === trainer.step && e.digits === d));
    result.evals.push(...(await evaluate(model, run, objective, seed, trainer.step, missing)));
  } else if (fs.existsSync(path.join(dir, "latest.json"))) {
    throw new InputError(`${dir} holds a run already: add --resume to continue it, or choose another --runs`);
  }
  const save = () => fs.writeFileSync(resultFile, JSON.stringify(result));
  if (trainer.step === 0) result.evals.push(...(await evaluate(model, run, objective, seed, 0)));
  save();
  const t0 = performance.now();
  try {
    await trainer.run(async (m) => {
      process.stderr.write(`${run} step ${m.step}: reward ${m.reward.toFixed(3)} acc ${m.accuracy.toFixed(3)} len ${m.responseLength.toFixed(1)} clip ${m.clipFraction.toFixed(3)} ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      if (m.step % evalEvery === 0 || m.step === totalSteps) {
        result.evals.push(...(await evaluate(model, run, objective, seed, m.step)));
        save();
      }
    });
  } catch (e) {
    if (!(e instanceof M1Error)) throw e;
    result.stopped = `stopped in step ${trainer.step + 1}: ${e.message}`;
    fs.writeFileSync(path.join(dir, "stopped-metrics.json"), JSON.stringify(trainer.metrics));
    process.stderr.write(`${run} ${result.stopped}\n`);
    save();
  }
}

/** Gathers every run under --runs (its evaluations and its newest checkpoint's metrics) into the Arrow results. */
async function collect(): Promise<void> {
  const { model } = await loadLocalModel(from);
  const decode = (id: number) => model.tokenizer!.decode([id]).trim();
  const evals: Evaluation[] = [];
  const stopped = new Map<string, number>();
  const dropped: Record<string, StepMetrics[]> = {};
  fs.mkdirSync(outDir, { recursive: true });
  const runs = fs.existsSync(runsDir) ? fs.readdirSync(runsDir).filter((r) => fs.existsSync(path.join(runsDir, r, "result.json"))).sort() : [];
  for (const run of runs) {
    const dir = path.join(runsDir, run);
    const result = JSON.parse(fs.readFileSync(path.join(dir, "result.json"), "utf8")) as RunResult;
    evals.push(...result.evals);
    const stoppedMetrics = path.join(dir, "stopped-metrics.json");
    const latest = path.join(dir, "latest.json");
    const metrics: StepMetrics[] = fs.existsSync(stoppedMetrics) ? JSON.parse(fs.readFileSync(stoppedMetrics, "utf8"))
      : fs.existsSync(latest) ? JSON.parse(fs.readFileSync(path.join(dir, `step-${String((JSON.parse(fs.readFileSync(latest, "utf8")) as { step: number }).step).padStart(6, "0")}`, "metrics.json"), "utf8"))
      : [];
    fs.writeFileSync(path.join(outDir, `compare-steps-${run}.arrow`), tableToIPC(metricsTable(metrics, run), "file"));
    dropped[run] = metrics;
    if (result.stopped) {
      console.log(`- ${run} ${result.stopped}`);
      stopped.set(run, metrics.length);
    }
  }
  fs.writeFileSync(path.join(outDir, "compare-evals.arrow"), tableToIPC(tableFromArrays({
    run: evals.map((e) => e.run), objective: evals.map((e) => e.objective), seed: Int32Array.from(evals, (e) => e.seed),
    step: Int32Array.from(evals, (e) => e.step), digits: Int32Array.from(evals, (e) => e.digits), decoding: evals.map((e) => e.decoding),
    accuracy: Float64Array.from(evals, (e) => e.accuracy), response_length: Float64Array.from(evals, (e) => e.length),
  }), "file"));
  fs.writeFileSync(path.join(outDir, "compare-clipped-tokens.arrow"), tableToIPC(droppedTokensTable(dropped, decode), "file"));
  summarize(evals, stopped);
  summarizeDropped(dropped, decode);
}

/** Per objective: how many tokens PPO-style clipping dropped (per 1,000 update tokens), with which advantage sign, and which tokens. */
function summarizeDropped(runs: Record<string, StepMetrics[]>, decode: (id: number) => string): void {
  console.log(`\ntokens beyond DAPO's clip range in the direction of their advantage (dropped by DAPO/GRPO, kept by CISPO)`);
  console.log(`| objective | runs | clip fraction (own range, mean over steps) | dropped | per 1,000 update tokens | A > 0 / A < 0 | most frequent tokens |`);
  console.log(`|---|---|---|---|---|---|---|`);
  const objectiveOf = (run: string) => run.replace(/-seed\d+$/, "");
  for (const objective of new Set(Object.keys(runs).map(objectiveOf))) {
    const mine = Object.entries(runs).filter(([r]) => objectiveOf(r) === objective).flatMap(([, ms]) => ms);
    const tokens = mine.flatMap((m) => m.ppoDroppedTokens);
    const updateTokens = mine.reduce((s, m) => s + m.ratioHistogram.reduce((a, b) => a + b, 0), 0);
    const byToken = new Map<string, number>();
    for (const t of tokens) byToken.set(decode(t.token), (byToken.get(decode(t.token)) ?? 0) + 1);
    const top = [...byToken].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([t, n]) => `\`${t}\` ${n}`).join(", ");
    const runsOf = Object.keys(runs).filter((r) => objectiveOf(r) === objective).length;
    const clipFraction = mine.reduce((a, m) => a + m.clipFraction, 0) / Math.max(1, mine.length);
    console.log(`| ${objective} | ${runsOf} | ${clipFraction.toFixed(4)} | ${tokens.length} | ${((1000 * tokens.length) / Math.max(1, updateTokens)).toFixed(2)} | ` +
      `${tokens.filter((t) => t.advantage > 0).length} / ${tokens.filter((t) => t.advantage < 0).length} | ${top} |`);
  }
}

/**
 * The tables of docs/rl.md: per objective and eval step, the held-out accuracy's mean ± standard deviation over the
 * seeds (greedy and t=1 per digit count), and the first eval step at which each run reaches each --thresholds level.
 */
function summarize(evals: Evaluation[], stopped: Map<string, number>): void {
  const objectivesSeen = [...new Set(evals.map((e) => e.objective))];
  const digitsSeen = [...new Set(evals.map((e) => e.digits))].sort((a, b) => a - b);
  const stats = (xs: number[]) => {
    if (xs.length === 0) return "-";
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
    return `${m.toFixed(2)} ± ${sd.toFixed(2)}`;
  };
  console.log(`\nheld-out exact accuracy, mean ± sd over seeds (n = seeds with that step)`);
  console.log(`| objective | step | n | ${digitsSeen.map((d) => `${d}d greedy | ${d}d t=1`).join(" | ")} |`);
  console.log(`|---|---|---|${digitsSeen.map(() => "---|---").join("|")}|`);
  for (const objective of objectivesSeen) {
    const mine = evals.filter((e) => e.objective === objective);
    for (const step of [...new Set(mine.map((e) => e.step))].sort((a, b) => a - b)) {
      const at = mine.filter((e) => e.step === step);
      const cell = (d: number, dec: string) => stats(at.filter((e) => e.digits === d && e.decoding === dec).map((e) => e.accuracy));
      console.log(`| ${objective} | ${step} | ${new Set(at.map((e) => e.seed)).size} | ${digitsSeen.map((d) => `${cell(d, "greedy")} | ${cell(d, "t1")}`).join(" | ")} |`);
    }
  }
  console.log(`\nsteps to threshold (t=1, first eval step at or above; "-" never within the run, "×N" stopped after step N before reaching it)`);
  console.log(`| objective | ${thresholds.map((t) => `${t.digits}d ≥ ${t.level}`).join(" | ")} |`);
  console.log(`|---|${thresholds.map(() => "---").join("|")}|`);
  for (const objective of objectivesSeen) {
    const seedsOf = [...new Set(evals.filter((e) => e.objective === objective).map((e) => e.seed))].sort((a, b) => a - b);
    const cells = thresholds.map((t) => seedsOf.map((seed) => {
      const hit = evals.filter((e) => e.objective === objective && e.seed === seed && e.digits === t.digits && e.decoding === "t1" && e.accuracy >= t.level)
        .map((e) => e.step).sort((a, b) => a - b)[0];
      const run = `${objective}-seed${seed}`;
      return hit !== undefined ? String(hit) : stopped.has(run) ? `×${stopped.get(run)}` : "-";
    }).join(", "));
    console.log(`| ${objective} | ${cells.join(" | ")} |`);
  }
}

if (!values["collect-only"]) {
  const all = seeds.flatMap((seed) => objectives.map((objective) => ({ objective, seed })));
  for (const [i, { objective, seed }] of all.entries()) if (i % Number(shard[2]) === Number(shard[1])) await train(objective, seed);
}
await collect();
