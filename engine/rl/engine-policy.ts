/**
 * The engine as the training loop's Policy: rollouts in one decode batch on the model as it is, and each update from
 * the engine's trainer (one forward pass whose log-probabilities give the token weights, the weighted backward pass,
 * AdamW on f32 master weights, the model's own weights rewritten from them). Saved as the checkpoint in its own
 * format plus the masters and AdamW's state, so a resumed run continues bit for bit.
 */
import path from "node:path";
import type { Model } from "../model.ts";
import type { Trainer, TrainerOptions } from "../train/trainer.ts";
import { InputError } from "../errors.ts";
import { rollout } from "./rollout.ts";
import type { Policy, PolicyStep } from "./train.ts";
import type { TokenWeightsOf } from "../train/loss.ts";

export class EnginePolicy implements Policy {
  readonly trainer: Trainer;

  constructor(readonly model: Model, options: TrainerOptions) {
    if (!model.tokenizer) throw new InputError(`${model.checkpoint.dir} has no tokenizer.json: the training tasks are text`);
    this.trainer = model.trainer(options);
  }

  rollout(prompts: readonly string[], options: Parameters<Policy["rollout"]>[1]): ReturnType<Policy["rollout"]> {
    return rollout(this.model, prompts, options);
  }

  async step(sequences: number[][], options: { tokenWeights: TokenWeightsOf }): Promise<PolicyStep> {
    const r = await this.trainer.step(sequences, { tokenWeights: options.tokenWeights });
    return { loss: r.loss, tokenLogprobs: r.tokenLogprobs, gradNorm: r.gradNorm, lr: r.lr, seconds: r.seconds };
  }

  encode(text: string): number[] {
    return this.model.tokenizer!.encode(text);
  }

  save(dir: string): void {
    this.model.save(path.join(dir, "model"));
    this.trainer.saveState(path.join(dir, "trainer.safetensors"));
  }

  load(dir: string): void {
    this.trainer.loadState(path.join(dir, "trainer.safetensors"));
  }
}
