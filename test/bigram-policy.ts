/**
 * A small real policy for testing the training loop without the engine's backward pass: next-token logits are a
 * table W[previous token][next token] over the demo vocabulary, sampled with the engine's sampler streams, with
 * exact log-probabilities and gradients, and plain SGD. Everything the loop asks of a policy, in ~80 lines.
 */
import fs from "node:fs";
import path from "node:path";
import { Rng } from "../engine/sampling.ts";
import type { Tokenizer } from "../engine/tokenizer.ts";
import type { Policy, PolicyStep, TrainConfig } from "../engine/rl/train.ts";
import type { TokenWeightsOf } from "../engine/train/loss.ts";
import type { Reward } from "../engine/rl/rewards.ts";
import { additionProblems } from "../engine/rl/tasks.ts";
import type { Rollout } from "../engine/rl/rollout.ts";

const V = 18;
const END = 2; // </s>

export class BigramPolicy implements Policy {
  W = new Float64Array(V * V);
  constructor(private readonly tokenizer: Tokenizer, private readonly lr = 0.5) {}

  private logSoftmaxRow(prev: number): Float64Array {
    const row = this.W.subarray(prev * V, (prev + 1) * V);
    const max = Math.max(...row);
    const z = Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) + max;
    return row.map((x) => x - z);
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  async rollout(prompts: readonly string[], o: { groupSize: number; seed: number; maxNewTokens: number }): Promise<Rollout[]> {
    const out: Rollout[] = [];
    prompts.forEach((text, i) => {
      const prompt = this.encode(text);
      for (let j = 0; j < o.groupSize; j++) {
        const rng = new Rng(o.seed + i * o.groupSize + j);
        const completion: number[] = [];
        const logprobs: number[] = [];
        let prev = prompt[prompt.length - 1];
        while (completion.length < o.maxNewTokens && prev !== END) {
          const lp = this.logSoftmaxRow(prev);
          let u = rng.next();
          let next = V - 1;
          for (let k = 0; k < V; k++) if ((u -= Math.exp(lp[k])) < 0) { next = k; break; }
          completion.push(next);
          logprobs.push(lp[next]);
          prev = next;
        }
        out.push({ group: i, prompt, completion, logprobs, forced: completion.map(() => false), text: this.tokenizer.decode(completion),
          truncated: prev !== END, repetitionStop: false });
      }
    });
    return out;
  }

  async tokenLogprobs(sequences: number[][]): Promise<Float32Array[]> {
    return sequences.map((s) => Float32Array.from(s.slice(1), (next, t) => this.logSoftmaxRow(s[t])[next]));
  }

  /** The weighted cross-entropy's gradient by W (exact), then a plain SGD step. */
  async step(sequences: number[][], options: { tokenWeights: TokenWeightsOf }): Promise<PolicyStep> {
    let t0 = performance.now();
    const tokenLogprobs = await this.tokenLogprobs(sequences);
    const forward = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const tokenWeights = options.tokenWeights(tokenLogprobs);
    const g = new Float64Array(V * V);
    let loss = 0;
    sequences.forEach((s, k) => {
      for (let t = 0; t + 1 < s.length; t++) {
        const w = tokenWeights[k][t];
        const lp = this.logSoftmaxRow(s[t]);
        loss -= w * lp[s[t + 1]];
        // d(−w log p_next)/dW[prev, j] = w (p_j − [j = next])
        for (let j = 0; j < V; j++) g[s[t] * V + j] += w * (Math.exp(lp[j]) - (j === s[t + 1] ? 1 : 0));
      }
    });
    const backward = (performance.now() - t0) / 1000;
    t0 = performance.now();
    let sq = 0;
    g.forEach((x, i) => {
      sq += x * x;
      this.W[i] -= this.lr * x;
    });
    return { loss, tokenLogprobs, gradNorm: Math.sqrt(sq), lr: this.lr, seconds: { forward, backward, optimiser: (performance.now() - t0) / 1000 } };
  }

  save(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "W.json"), JSON.stringify([...this.W]));
  }

  load(dir: string): void {
    this.W = Float64Array.from(JSON.parse(fs.readFileSync(path.join(dir, "W.json"), "utf8")) as number[]);
  }
}

/** A reward with variance for a bigram policy: the thought was closed. */
export const closesThought: Reward = (_p, c) => (c.text.includes("</think>") ? 1 : 0);

/** A small RL run of the bigram policy on additions. */
export const rlConfig = (over: Partial<TrainConfig> = {}): TrainConfig => ({
  mode: "rl", objective: "cispo", seed: 3, steps: 6, batchSize: 3, groupSize: 4, rounds: 2, temperature: 1,
  maxNewTokens: 12, thinkingBudget: () => 40, problems: (rng, _s, n) => additionProblems(rng, [2, 3], n),
  reward: closesThought, dynamicSampling: true, checkpointEvery: 2, ...over,
});
