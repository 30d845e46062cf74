// `m1 serve <checkpoint> [--port P] [--name NAME] [--max-batch N] [--lanes N] [--max-prompt-tokens N] [--reasoning-parser minimax_m1]`: serves a checkpoint (a registry name such as
// mini-40k, or a directory) on 127.0.0.1 under the OpenAI API, until SIGINT or SIGTERM.
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { loadLocalModel } from "../../benchmarks/registry.ts";
import { CompletionServer } from "../openai/server.ts";

export const SERVE_USAGE = "m1 serve <checkpoint|mini-40k|mini-80k> [--port P (default 8000; 0 = any free port)] [--name MODEL_NAME] [--max-batch N (requests decoding together, default 64)] " +
  "[--lanes N (batches stepping side by side, each pass on one core while several have work: for cores that other work competes for; default 1)] " +
  "[--max-prompt-tokens N (longer prompts get 400; default the model's max_position_embeddings)] " +
  "[--reasoning-parser minimax_m1 (chat answers give their leading <think>…</think> as reasoning_content, as vLLM's parser of that name)]";

/** The reasoning parsers `--reasoning-parser` knows (vLLM's names). */
const REASONING_PARSERS = ["minimax_m1"];

export async function serve(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    port: { type: "uint", max: 65535 }, name: { type: "string" }, "max-batch": { type: "uint", min: 1 }, "max-prompt-tokens": { type: "uint", min: 1 },
    lanes: { type: "uint", min: 1 }, "reasoning-parser": { type: "string" },
  });
  const parser = values["reasoning-parser"];
  if (parser !== undefined && !REASONING_PARSERS.includes(parser)) throw new InputError(`--reasoning-parser must be ${REASONING_PARSERS.join(" or ")}, got "${parser}"`);
  if (positionals.length !== 1) throw new InputError(`expected one checkpoint, got ${positionals.length ? positionals.join(" ") : "none"}\nusage: ${SERVE_USAGE}`);
  const { name, model } = await loadLocalModel(positionals[0]);
  const server = new CompletionServer(model, values.name ?? name, { maxBatch: values["max-batch"], lanes: values.lanes, maxPromptTokens: values["max-prompt-tokens"], reasoningParser: parser !== undefined });
  const bound = await server.listen(values.port ?? 8000);
  process.stdout.write(`m1 serve: ${server.name} at http://127.0.0.1:${bound}/v1, prompts up to ${server.maxPromptTokens} tokens (Ctrl-C stops)\n`);
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  await server.close();
  process.stderr.write(`m1 serve: stopped (${signal})\n`);
  return 0;
}
