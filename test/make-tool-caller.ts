// Makes test/fixtures/tool-caller: a tiny M1-shaped checkpoint with a byte-level tokenizer and M1's chat template,
// fine-tuned with the engine's own trainer to answer one weather question with M1-format tool calls, so that a
// served model really produces <tool_calls> that `m1 serve` turns into OpenAI `tool_calls` (recipe:
// test/fixtures/tool-caller/README.md).
//
//   node --import tsx test/make-tool-caller.ts [OUT_DIR (default: test/fixtures/tool-caller)] [--steps N]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Model } from "../engine/model.ts";
import { byteAlphabet } from "../engine/tokenizer.ts";
import { warmupCosine } from "../engine/train/schedule.ts";
import { hubConfig, writeRandomCheckpoint, type BenchShape } from "../benchmarks/perf/checkpoint.ts";
import { chatParams } from "../kernel/openai/requests.ts";
import { TOOL_CALLS_OPEN } from "../engine/tool-calls.ts";
import { TOOL_CALLER_TURNS, type TrainedTurn } from "./tool-caller-turns.ts";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const M1_TEMPLATE_CONFIG = path.join(FIXTURES, "minimax-m1", "tokenizer_config.json");
/** The files of the checkpoint (the folder's README.md is kept). */
const CHECKPOINT_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

/** M1's special tokens (docs/architecture.md §4), after the 256 byte tokens. */
const SPECIAL_TOKENS = ["<pad>", "<beginning_of_sentence>", "<end_of_sentence>", "<end_of_document>", "<begin_of_document>"];

const SHAPE: BenchShape = {
  hidden: 64, layers: 2, softmaxLayers: [1], heads: 4, headDim: 16, kvHeads: 2, rotaryDim: 16,
  experts: 4, topK: 2, intermediate: 64, vocab: 264, // 256 bytes + 5 special tokens, padded to a multiple of 8
};
const SEED = 7;

function tokenizerJson(): object {
  const vocab = Object.fromEntries(byteAlphabet().map((c, b) => [c, b]));
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: false };
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, i) => ({ id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", ...byteLevel },
    post_processor: null,
    decoder: { type: "ByteLevel", ...byteLevel },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
}

/** M1's tokenizer_config.json (chat template and special tokens) with this tokenizer's class. */
function tokenizerConfig(): object {
  const m1 = JSON.parse(fs.readFileSync(M1_TEMPLATE_CONFIG, "utf8"));
  return { ...m1, tokenizer_class: "PreTrainedTokenizerFast", model_max_length: 4096 };
}

/** The prompt as the server renders the request, the answer's forced start (weight 0) and the trained rest. */
function trainingSequence(model: Model, turn: TrainedTurn): { ids: number[]; weights: Float32Array } {
  const tokenizer = model.tokenizer!;
  const p = chatParams({ model: "tool-caller", ...turn.request }, "tool-caller");
  const tools = p.toolChoice !== "none" ? p.tools : [];
  const prompt = tokenizer.renderChat(p.messages, { addGenerationPrompt: true, ...(tools.length ? { tools } : {}) });
  const forced = turn.forced ?? "";
  if (forced && !forced.startsWith(TOOL_CALLS_OPEN)) throw new Error(`a forced answer start must open a call block: ${forced}`);
  const context = tokenizer.encode(prompt + forced);
  const answer = tokenizer.encode(turn.answer + "<end_of_sentence>");
  const ids = [...context, ...answer];
  const weights = new Float32Array(ids.length - 1);
  weights.fill(1, context.length - 1); // predict every answer token, nothing of the prompt
  return { ids, weights };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const stepsAt = args.indexOf("--steps");
  const steps = stepsAt >= 0 ? Number(args.splice(stepsAt, 2)[1]) : 300;
  const out = path.resolve(args[0] ?? path.join(FIXTURES, "tool-caller"));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "tool-caller-"));
  try {
    const initial = path.join(work, "initial");
    writeRandomCheckpoint(SHAPE, initial, SEED, `test/make-tool-caller.ts (seed ${SEED})`);
    const config = { ...hubConfig(SHAPE), bos_token_id: 257, eos_token_id: 258, max_position_embeddings: 4096, rope_theta: 10000.0 };
    fs.writeFileSync(path.join(initial, "config.json"), JSON.stringify(config, null, 1) + "\n");
    fs.writeFileSync(path.join(initial, "tokenizer.json"), JSON.stringify(tokenizerJson()) + "\n");
    fs.writeFileSync(path.join(initial, "tokenizer_config.json"), JSON.stringify(tokenizerConfig(), null, 1) + "\n");
    const model = await Model.load(initial);
    const batch = TOOL_CALLER_TURNS.map((t) => trainingSequence(model, t));
    const predicted = batch.reduce((s, b) => s + b.weights.reduce((a, w) => a + w, 0), 0);
    const tokenWeights = batch.map((b) => b.weights.map((w) => w / predicted));
    const trainer = model.trainer({ lr: warmupCosine({ peak: 3e-3, warmupSteps: 30, totalSteps: steps, min: 1e-4 }), betas: [0.9, 0.95], maxGradNorm: 1 });
    for (let s = 1; s <= steps; s++) {
      const r = await trainer.step(batch.map((b) => b.ids), { tokenWeights });
      if (s % 20 === 0 || s === steps) process.stderr.write(`step ${s}/${steps}: loss ${r.loss.toFixed(4)} (mean nats per answer token), grad norm ${r.gradNorm.toFixed(3)}\n`);
    }
    const saved = path.join(work, "trained");
    model.save(saved);
    fs.mkdirSync(out, { recursive: true });
    for (const f of CHECKPOINT_FILES) fs.copyFileSync(path.join(saved, f), path.join(out, f));
    process.stderr.write(`wrote ${CHECKPOINT_FILES.join(", ")} to ${out}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
