/** Scoring and routing over datasets against one plain forward pass per prompt. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model, Trace, score, loglikelihoodRolling, DatasetRouting } from "../engine/index.ts";
import { logSumExp } from "../engine/softmax.ts";
import { ROOT } from "./helpers.ts";

const MINI = join(ROOT, "engine", "checkpoints", "mini-80k");

/** Σ log p(ids[t] | ids[..t]) for t in [from, ids.length), from one forward pass of the whole sequence. */
async function reference(model: Model, ids: number[], from: number): Promise<{ logprob: number; greedy: boolean }> {
  const vocab = model.config.vocabSize;
  const logits = (await model.forward(ids)).logits.f32;
  let logprob = 0, greedy = true;
  for (let t = from; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * vocab, t * vocab);
    const { logZ, argmax } = logSumExp(row);
    logprob += row[ids[t]] - logZ;
    greedy &&= argmax === ids[t];
  }
  return { logprob, greedy };
}

test("score: summed log-probabilities and greedy flags equal one forward per request; the right answer is greedy", async () => {
  const model = await Model.load(MINI);
  const context = "<s> 4 8 7 + 9 3 5 = <think>";
  const answer = (await model.generate(context, { greedy: true, maxNewTokens: 6 }).result()).ids;
  const requests = [
    { context, continuation: answer },
    { context, continuation: " 3 9" },
    { context: "<s> 1 2 + 3 4 =", continuation: [model.tokenizer!.encode("<think>", { addSpecialTokens: false })[0]] },
  ];
  const scores = await score(model, requests, { maxRowsPerPass: 20 }); // several passes
  assert.equal(scores.length, 3);
  for (let i = 0; i < requests.length; i++) {
    const ctx = Array.from(model.promptIds(requests[i].context));
    const cont = typeof requests[i].continuation === "string" ? model.tokenizer!.encode(requests[i].continuation as string, { addSpecialTokens: false }) : Array.from(requests[i].continuation as number[]);
    const ref = await reference(model, [...ctx, ...cont], ctx.length);
    assert.ok(Math.abs(scores[i].logprob - ref.logprob) < 1e-4, `request ${i}: ${scores[i].logprob} vs ${ref.logprob}`);
    assert.equal(scores[i].greedy, ref.greedy);
    assert.equal(scores[i].tokens, cont.length);
  }
  assert.equal(scores[0].greedy, true, "the greedy generation is greedy");
  assert.ok(scores[0].logprob > scores[1].logprob);
  await assert.rejects(score(model, [{ context, continuation: "" }]), /request 0 has an empty continuation/);
});

test("loglikelihood_rolling: one window equals a full forward, small windows score every token once", async () => {
  const model = await Model.load(MINI);
  const text = "<s> 4 8 7 2 + 9 3 5 1 = <think> 3 9 2 1 </think> 1 4 2 3 8 </s>";
  const ids = Array.from(model.promptIds(text));
  const whole = await loglikelihoodRolling(model, text);
  const ref = await reference(model, ids, 1);
  assert.equal(whole.tokens, ids.length - 1);
  assert.ok(Math.abs(whole.logprob - ref.logprob) < 1e-4);
  assert.ok(Math.abs(whole.perplexity - Math.exp(-ref.logprob / (ids.length - 1))) < 1e-6 * whole.perplexity);
  const windowed = await loglikelihoodRolling(model, text, { window: 6 });
  let manual = 0;
  for (let s = 1; s < ids.length; s += 5) {
    const e = Math.min(ids.length, s + 5);
    const from = Math.max(0, e - 6);
    manual += (await reference(model, ids.slice(from, e), s - from)).logprob;
  }
  assert.equal(windowed.tokens, ids.length - 1);
  assert.ok(Math.abs(windowed.logprob - manual) < 1e-4, `${windowed.logprob} vs ${manual}`);
  await assert.rejects(loglikelihoodRolling(model, text, { window: 1 }), /window must be an integer of at least 2/);
});

test("routing over a dataset: load, entropy, co-occurrence and the per-token log agree with each prompt's own trace", async () => {
  const model = await Model.load(MINI);
  const prompts = ["<s> 4 8 7 + 9 3 5 = <think>", "<s> 1 2 + 3 4 = <think>", "<s> 9 9 9 9 + 1 = <think>"];
  const stats = await DatasetRouting.collect(model, prompts, { maxRowsPerPass: 12 });
  const { numLayers, numExperts, topK } = model.config;
  const traces: Trace[] = [];
  for (const p of prompts) traces.push(await Trace.run(model, "mini-80k", p)); // one at a time: hooks are the model's
  const tokens = traces.reduce((s, t) => s + t.tokens, 0);
  assert.equal(stats.tokens, tokens);
  const load = stats.load();
  for (let l = 0; l < numLayers; l++) {
    assert.ok(Math.abs(load[l].reduce((s, x) => s + x, 0) - 1) < 1e-12);
    for (let e = 0; e < numExperts; e++) {
      const count = traces.reduce((s, t) => s + t.routing(l).load().tokens[e], 0);
      assert.ok(Math.abs(load[l][e] - count / (tokens * topK)) < 1e-12, `layer ${l} expert ${e}`);
    }
    const entropy = traces.reduce((s, t) => s + t.routing(l).entropy().reduce((a, b) => a + b, 0), 0) / tokens;
    assert.ok(Math.abs(stats.entropy()[l] - entropy) < 1e-5, `layer ${l}: entropy ${stats.entropy()[l]} vs ${entropy}`);
    const co = stats.cooccurrence(l);
    for (let e = 0; e < numExperts; e++) assert.equal(co[e][e], load[l][e] * tokens * topK);
    assert.equal(co.flat().reduce((s, x) => s + x, 0), tokens * topK * topK);
  }
  const log = stats.log();
  assert.equal(log.numRows, tokens * numLayers * topK);
  assert.deepEqual(log.schema.fields.map((f) => f.name), ["prompt", "position", "token", "layer", "slot", "expert", "weight"]);
  const perToken = stats.tokenExperts(0);
  assert.equal(perToken.getChild("count")!.toArray().reduce((s: number, x: number) => s + x, 0), tokens * topK);
  assert.throws(() => stats.cooccurrence(8), /layer 8 is outside \[0, 8\)/);
});
