// Resolves a checkpoint argument through the workbench registry (engine/registry.ts): the demo pair by name, the
// real MiniMax-M1-40k/-80k where this machine has them (a local download, or an endpoint from M1_ENDPOINT), or
// a checkpoint directory by path.
import path from "node:path";
import { Registry, type CheckpointSource } from "../engine/registry.ts";
import { Model } from "../engine/model.ts";
import { InputError } from "../engine/errors.ts";

export interface ResolvedCheckpoint {
  /** the name results and the served model go by: the registered name, or the directory's base name */
  name: string;
  source: CheckpointSource;
}

export function resolveCheckpoint(nameOrPath: string, registry = Registry.default()): ResolvedCheckpoint {
  const entry = registry.resolve(nameOrPath);
  const registered = registry.list().some((e) => e.name === nameOrPath);
  return { name: registered ? entry.name : path.basename(path.resolve(nameOrPath)), source: entry.source };
}

/** Loads a checkpoint that has local weights (streamed under the registry's resident budget, if it sets one). */
export async function loadLocalModel(nameOrPath: string): Promise<{ name: string; model: Model }> {
  const { name, source } = resolveCheckpoint(nameOrPath);
  if (source.kind !== "local") throw new InputError(`checkpoint "${nameOrPath}" is an endpoint (${source.baseUrl}), not local weights: use it as an endpoint`);
  return { name, model: await Model.load(source.path, { residentBudgetBytes: source.residentBudgetBytes }) };
}
