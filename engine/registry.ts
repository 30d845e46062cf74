/**
 * Checkpoints by name: the embedded demo pair (works anywhere, nothing to download), the real MiniMax-M1-40k /
 * -80k (a local download streamed per layer, or an OpenAI-compatible endpoint such as vLLM/SGLang serving them),
 * and any checkpoint directory by path.
 */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckpointError } from "./errors.ts";

export const EMBEDDED_DIR = fileURLToPath(new URL("./checkpoints/", import.meta.url));

export type CheckpointSource =
  | { kind: "local"; path: string; residentBudgetBytes?: number }
  | { kind: "endpoint"; baseUrl: string; model: string; apiKey?: string };

export interface RegistryEntry {
  name: string;
  description: string;
  embedded: boolean;
  /** null: known, but not available on this machine yet (see `setup`) */
  source: CheckpointSource | null;
  /** how to make an unavailable entry available */
  setup?: string;
}

const DEMO = (budget: number, digits: string, lineage = "") =>
  `Demo checkpoint shipped with m1-workbench: a 3.8M-parameter model with the MiniMax-M1 architecture (8 layers, 7 lightning + 1 softmax, ` +
  `4 experts top-2, BF16), trained on multi-digit addition with a scratchpad in <think>…</think> under a thinking budget of ${budget} ` +
  `(operands of ${digits} digits${lineage}). It is not MiniMax-M1 and knows nothing but addition.`;

const REAL = (which: string) =>
  `The released MiniMax-M1-${which} (456B parameters, 45.9B active, 912 GB in BF16): run locally by streaming one layer at a time under a ` +
  `memory budget, or through an OpenAI-compatible endpoint (vLLM/SGLang serving it on 8 GPUs) for generation.`;

export class Registry {
  private readonly entries = new Map<string, RegistryEntry>();

  /** The embedded pair, and the real M1 pair configured from M1_CHECKPOINT_DIR / M1_ENDPOINT (+ M1_ENDPOINT_KEY). */
  static default(env: NodeJS.ProcessEnv = process.env): Registry {
    const r = new Registry();
    r.add({ name: "mini-40k", description: DEMO(40, "1-6"), embedded: true, source: { kind: "local", path: join(EMBEDDED_DIR, "mini-40k") } });
    r.add({ name: "mini-80k", description: DEMO(80, "1-12", "; continued from mini-40k"), embedded: true, source: { kind: "local", path: join(EMBEDDED_DIR, "mini-80k") } });
    r.add({
      name: "mini-80k-rl", embedded: true, source: { kind: "local", path: join(EMBEDDED_DIR, "mini-80k-rl") },
      description: DEMO(64, "6-9", "; mini-40k after a short supervised bridge, then RL with CISPO and the exact-answer reward through a staged budget 48 → 56 → 64, docs/rl.md"),
    });
    for (const which of ["40k", "80k"]) {
      const name = `MiniMax-M1-${which}`;
      const local = env.M1_CHECKPOINT_DIR ? join(env.M1_CHECKPOINT_DIR, name) : null;
      const budget = env.M1_RESIDENT_BUDGET ? Number(env.M1_RESIDENT_BUDGET) : 16 * 2 ** 30;
      const source: CheckpointSource | null = local && existsSync(join(local, "config.json"))
        ? { kind: "local", path: local, residentBudgetBytes: budget }
        : env.M1_ENDPOINT
          ? { kind: "endpoint", baseUrl: env.M1_ENDPOINT, model: `MiniMaxAI/${name}`, apiKey: env.M1_ENDPOINT_KEY }
          : null;
      r.add({
        name, description: REAL(which), embedded: false, source,
        setup: `download MiniMaxAI/${name} to $M1_CHECKPOINT_DIR/${name}, or set M1_ENDPOINT to an OpenAI-compatible server ` +
          `(e.g. vLLM: python3 -m vllm.entrypoints.openai.api_server --model MiniMaxAI/${name} --tensor-parallel-size 8 --trust-remote-code), ` +
          `or call workbench.register("${name}", { path } | { endpoint, model })`,
      });
    }
    return r;
  }

  add(entry: RegistryEntry): void {
    this.entries.set(entry.name, entry);
  }

  list(): RegistryEntry[] {
    return [...this.entries.values()];
  }

  /** A registered name, or a checkpoint directory (with config.json) by path. */
  resolve(nameOrPath: string): RegistryEntry & { source: CheckpointSource } {
    const entry = this.entries.get(nameOrPath);
    if (entry) {
      if (!entry.source) throw new CheckpointError(`checkpoint "${nameOrPath}" is not available on this machine: ${entry.setup}`);
      return entry as RegistryEntry & { source: CheckpointSource };
    }
    const dir = resolve(nameOrPath);
    if (existsSync(dir) && statSync(dir).isDirectory() && existsSync(join(dir, "config.json"))) {
      return { name: nameOrPath, description: `checkpoint directory ${dir}`, embedded: false, source: { kind: "local", path: dir } };
    }
    throw new CheckpointError(`unknown checkpoint "${nameOrPath}": not a registered name (${[...this.entries.keys()].join(", ")}) nor a directory with a config.json`);
  }
}
