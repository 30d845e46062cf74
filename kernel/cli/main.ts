/**
 * The `m1` command line. Stable forms (used by people and by outside checks):
 *   m1 info <checkpoint-dir-or-config.json> [--json]
 *   m1 forward <checkpoint-dir> --ids 5,17,3 --out logits.safetensors
 *   m1 generate <checkpoint-dir-or-name> --ids 5,17,3 --max-new 16 --greedy --json   (tool_calls parsed from M1's <tool_calls> block)
 *   m1 grad <checkpoint-dir> --ids 1,5,9 --token-weights 0.5,-1 --out grad.safetensors [--hidden]
 */
import { M1Error, InputError } from "../../engine/errors.ts";
import { parseFlags, UsageError } from "./args.ts";
import { parseToolCalls } from "../../engine/tool-calls.ts";

const USAGE = `usage:
  m1 info <checkpoint-dir-or-config.json> [--json]
  m1 forward <checkpoint-dir> --ids 5,17,3 --out logits.safetensors
  m1 generate <checkpoint-dir|mini-40k|mini-80k> (--ids 5,17,3 | --prompt TEXT) [--max-new N] [--greedy | --temperature T --top-k K --top-p P --seed S]
              [--thinking-budget N] [--stop-token ID ...] [--stop STRING ...] [--json]
  m1 kernel --connection-file FILE
  m1 kernel install [--user | --prefix DIR] [--name NAME]
  m1 run <notebook.ipynb> [--out executed.ipynb] [--html report.html] [-p name=value ...] [--timeout S]
              [--server URL --token T [--server-path PATH]] [--kernel NAME]
  m1 serve <checkpoint|mini-40k|mini-80k> [--port P] [--name MODEL_NAME] [--max-batch N] [--max-prompt-tokens N] [--reasoning-parser minimax_m1]
  m1 eval <suite|task.json|task.yaml> (--model CHECKPOINT | --endpoint URL --model NAME) [...]   (all options: benchmarks/README.md)
  m1 grad <checkpoint-dir> --ids 1,5,... [--token-weights 0.5,-1,...] --out FILE.safetensors [--hidden]
  m1 make-checkpoint <bench-small> <out-dir> [--seed N] [--dtype f32|bf16]
  m1 train rl <checkpoint> --out DIR [--objective cispo|cispo_mask|dapo|grpo|reinforce] [--steps N] [--stages 48:6-7,...] [...]
  m1 train sft <checkpoint> --out DIR --recipe mini-40k|mini-80k [--steps N] [...]   (all options: docs/rl.md)
  m1 bench <checkpoint-dir> [--prefill N] [--context N] [--decode N] [--threads N] [--tries N] [--json]
  m1 driver-manifest (<checkpoint-dir> | --random <config> --layers 0,7) [--out FILE]   (for native/driver, the C++ core without Node.js)`;

type Command = (args: string[]) => Promise<number>;

// The kernel and the notebook runner load on demand, so that starting the kernel stays fast.
const kernel: Command = async (args) => (await import("./kernel.ts")).kernelCommand(args);
const run: Command = async (args) => (await import("./run.ts")).runCommand(args);
const serve: Command = async (args) => (await import("./serve.ts")).serve(args);
const evaluate: Command = async (args) => (await import("./eval.ts")).evaluate(args);
const makeCheckpoint: Command = async (args) => (await import("./make-checkpoint.ts")).makeCheckpoint(args);
const bench: Command = async (args) => (await import("./bench.ts")).bench(args);
const train: Command = async (args) => (await import("./train.ts")).train(args);
const grad: Command = async (args) => (await import("./grad.ts")).grad(args);
const driverManifest: Command = async (args) => (await import("./driver-manifest.ts")).driverManifestCommand(args);

const commands: Record<string, Command> = { info, forward, generate, kernel, run, serve, eval: evaluate, grad, "make-checkpoint": makeCheckpoint, bench, "driver-manifest": driverManifest, train };

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    process.stderr.write(`${name && name !== "--help" ? `m1: unknown command "${name}"\n` : ""}${USAGE}\n`);
    return name === "--help" ? 0 : 2;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof M1Error) {
      process.stderr.write(`m1 ${name}: ${err.message}${err instanceof UsageError ? `\n${USAGE}` : ""}\n`);
      return err instanceof UsageError ? 2 : 1;
    }
    throw err;
  }
}

/** The engine (and with it the native addon) loads only for the commands that compute. */
function engine() {
  return import("../../engine/index.ts");
}

function positional(args: string[], what: string): string {
  if (args.length !== 1) throw new InputError(`expected one ${what}, got ${args.length ? args.join(" ") : "none"}\n${USAGE}`);
  return args[0];
}

function requiredIds(ids: number[] | undefined): number[] {
  if (ids === undefined) throw new InputError("--ids is required (comma-separated token ids, e.g. --ids 5,17,3)");
  return ids;
}

async function info(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { json: { type: "boolean" } });
  const { architectureSummary, formatSummary } = await import("../../engine/summary.ts");
  const summary = architectureSummary(positional(positionals, "checkpoint directory or config.json"));
  process.stdout.write(values.json ? JSON.stringify(summary, null, 2) + "\n" : formatSummary(summary));
  return 0;
}

async function forward(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { ids: { type: "uints" }, out: { type: "string" } });
  const dir = positional(positionals, "checkpoint directory");
  if (!values.out) throw new InputError("--out is required (path of the safetensors file to write)");
  const { Model, Tensor, writeSafetensors } = await engine();
  const model = await Model.load(dir);
  const { logits } = await model.forward(requiredIds(values.ids));
  writeSafetensors(values.out, { logits: new Tensor("F32", logits.shape, logits.data) });
  process.stderr.write(`wrote logits [${logits.shape.join(", ")}] to ${values.out}\n`);
  return 0;
}

async function generate(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    ids: { type: "uints" },
    prompt: { type: "string" },
    "max-new": { type: "uint" },
    greedy: { type: "boolean" },
    temperature: { type: "number", min: 0 },
    "top-k": { type: "int", min: 1 },
    "top-p": { type: "number" },
    seed: { type: "int" },
    "thinking-budget": { type: "uint" },
    "stop-token": { type: "uint", multiple: true },
    stop: { type: "string", multiple: true },
    json: { type: "boolean" },
  });
  const checkpoint = positional(positionals, "checkpoint (a registry name such as mini-40k, or a directory)");
  if ((values.ids === undefined) === (values.prompt === undefined)) throw new InputError("give exactly one of --ids or --prompt");
  const { model } = await (await import("../../benchmarks/registry.ts")).loadLocalModel(checkpoint);
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  const outside = values["stop-token"]?.find((id) => id >= model.config.vocabSize);
  if (outside !== undefined) throw new InputError(`--stop-token: ${outside} is outside the vocabulary [0, ${model.config.vocabSize})`);
  const generation = model.generate(values.prompt ?? requiredIds(values.ids), {
    maxNewTokens: values["max-new"] ?? 64,
    greedy: values.greedy,
    temperature: values.temperature,
    topK: values["top-k"],
    topP: values["top-p"],
    seed: values.seed,
    thinkingBudget: values["thinking-budget"],
    stopTokens: values["stop-token"],
    stopStrings: values.stop,
    signal: controller.signal,
  });
  if (values.json) {
    const result = await generation.result();
    const out: Record<string, unknown> = { ids: result.ids, stop_reason: result.stopReason };
    if (result.text !== null) {
      out.text = result.text;
      const { toolCalls } = parseToolCalls(result.text); // M1's <tool_calls> block, as m1 serve returns it
      if (toolCalls.length) out.tool_calls = toolCalls;
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  } else {
    for await (const token of generation) process.stdout.write(token.text ?? `${token.index ? " " : ""}${token.id}`);
    process.stdout.write(`\n[${generation.stopReason}, ${generation.ids.length} tokens]\n`);
  }
  return 0;
}
