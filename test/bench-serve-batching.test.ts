// Continuous batching in `m1 serve`: concurrent requests decode together and each gets exactly the tokens it
// gets alone (same seed, same text, greedy or sampled, with stop strings and thinking budgets); a bad request
// fails alone, a client that goes away leaves the batch, and requests that need the engine to themselves
// (logprobs) run between batch steps without stalling the others.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { Model } from "../engine/model.ts";
import { CompletionServer } from "../kernel/openai/server.ts";
import { BatchScheduler } from "../kernel/openai/scheduler.ts";

const model = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
const batched = new CompletionServer(model, "mini-80k", { maxBatch: 64, lanes: 2 }); // two lanes: passes on threads of their own
const alone = new CompletionServer(model, "mini-80k", { maxBatch: 1 });
const batchedUrl = `http://127.0.0.1:${await batched.listen(0)}/v1`;
const aloneUrl = `http://127.0.0.1:${await alone.listen(0)}/v1`;
after(async () => {
  await batched.close();
  await alone.close();
});

const post = async (url: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<{ status: number; json: any }> => {
  const res = await fetch(`${url}/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "mini-80k", ...body }), signal });
  return { status: res.status, json: await res.json() };
};

const requests = Array.from({ length: 12 }, (_, i) => ({
  prompt: `<s> ${String(1000 + 7919 * i).split("").join(" ")} + ${String(2000 + 104729 * i).split("").join(" ")} = <think>`,
  max_tokens: 20 + 5 * (i % 4),
  temperature: i % 3 === 0 ? 0 : 1,
  top_p: 0.95,
  seed: i,
  ...(i % 4 === 1 ? { stop: [","] } : {}),
  ...(i % 4 === 2 ? { thinking_budget: 6 } : {}),
}));

test("concurrent requests decode in one batch and each equals its run alone", async () => {
  const together = await Promise.all(requests.map((r) => post(batchedUrl, r)));
  assert.ok(batched.scheduler.peakBatch > 1, `the batch held ${batched.scheduler.peakBatch} sequences at most`);
  const oneByOne: { status: number; json: any }[] = [];
  for (const r of requests) oneByOne.push(await post(aloneUrl, r));
  assert.equal(alone.scheduler.peakBatch, 1);
  together.forEach((t, i) => {
    assert.equal(t.status, 200);
    assert.deepEqual([t.json.choices[0].text, t.json.choices[0].finish_reason, t.json.usage], [oneByOne[i].json.choices[0].text, oneByOne[i].json.choices[0].finish_reason, oneByOne[i].json.usage], `request ${i}`);
  });
  assert.ok(together.some((t) => t.json.choices[0].finish_reason === "stop"));
  // /metrics: the batch steps by size (a Prometheus histogram), the prefills, the server's CPU time
  const res = await fetch(batchedUrl.replace(/\/v1$/, "/metrics"));
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const metrics = new Map((await res.text()).split("\n").filter((l) => l && !l.startsWith("#")).map((l) => [l.split(" ")[0], Number(l.split(" ")[1])]));
  const sizes = batched.scheduler.stepsBySize;
  assert.equal(metrics.get("m1_batch_size_max"), batched.scheduler.peakBatch);
  assert.equal(metrics.get("m1_batch_size_count"), sizes.reduce((a, b) => a + b, 0));
  assert.equal(metrics.get('m1_batch_size_bucket{le="+Inf"}'), metrics.get("m1_batch_size_count"));
  assert.equal(metrics.get('m1_batch_size_bucket{le="4"}'), sizes.slice(0, 5).reduce((a, b) => a + b, 0));
  assert.equal(metrics.get("m1_batch_size_sum"), sizes.reduce((a, n, b) => a + n * b, 0));
  assert.equal(metrics.get("m1_prefill_prompts_total"), requests.length);
  assert.ok(metrics.get("m1_prefill_joins_total")! < requests.length, "requests that arrive together are prefilled together");
  assert.equal(metrics.get("m1_requests_running"), 0);
  // lanes: with several, batches stepped side by side, each pass on a thread of its own, and still every request got its tokens alone
  assert.equal(metrics.get("m1_lanes"), batched.scheduler.laneCount);
  assert.ok(metrics.get('m1_passes_total{thread="own"}')! > 0, "passes on threads of their own");
  assert.ok(metrics.get("process_cpu_seconds_total")! > 0);
});

test("a bad request fails alone; a client that leaves frees its place; logprobs requests run between steps", async () => {
  // The leaving client streams and goes away as soon as its first token arrives, while its sequence is still in the batch.
  const controller = new AbortController();
  const leaving = (async () => {
    const res = await fetch(`${batchedUrl}/completions`, {
      method: "POST", headers: { "content-type": "application/json" }, signal: controller.signal,
      body: JSON.stringify({ model: "mini-80k", ...requests[3], max_tokens: 2000, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    while (!(await reader.read()).done);
    return new Error("the stream ended before the client left");
  })().catch((e) => e);
  const others = requests.slice(0, 4).map((r) => post(batchedUrl, r));
  const bad = post(batchedUrl, { prompt: [5, 99999], max_tokens: 4 });
  const scored = post(batchedUrl, { ...requests[0], logprobs: 1 });
  const [badReply, scoredReply, ...done] = await Promise.all([bad, scored, ...others]);
  assert.equal(badReply.status, 400);
  assert.match(badReply.json.error.message, /99999/);
  assert.equal(scoredReply.status, 200);
  assert.equal(scoredReply.json.choices[0].logprobs.tokens.length, scoredReply.json.usage.completion_tokens - (scoredReply.json.choices[0].finish_reason === "stop" ? 1 : 0));
  assert.deepEqual(done.map((d) => d.status), [200, 200, 200, 200]);
  assert.equal(done[0].json.choices[0].text, scoredReply.json.choices[0].text, "the same request batched and alone");
  assert.equal((await leaving).name, "AbortError");
  const after = await post(batchedUrl, requests[5]);
  assert.equal(after.status, 200, "the server keeps serving");
});

test("a request that arrives while a lane prefills joining prompts counts them: the lanes stay even", async () => {
  // lane 0 takes request 0 into its first pass; requests 2 and 3 arrive during that pass, while request 1 waits in
  // lane 1. Counting request 0 as lane 0's, they go one to each lane (2 + 2); not counting it, both to lane 0 (3 + 1).
  const lanes = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k")); // its own prefillMany to watch
  const scheduler = new BatchScheduler(lanes, 64, 2);
  const options = { maxNewTokens: 6, greedy: true };
  const ids = (i: number) => lanes.promptIds(requests[i].prompt) as number[];
  const runs: Promise<number[]>[] = [];
  const drain = async (g: AsyncIterable<{ id: number }>) => {
    const out: number[] = [];
    for await (const t of g) out.push(t.id);
    return out;
  };
  const prefillMany = lanes.prefillMany.bind(lanes);
  let first = true;
  lanes.prefillMany = (...args) => {
    if (first) {
      first = false;
      for (const i of [2, 3]) runs.push(drain(scheduler.generate(ids(i), options, [])));
    }
    return prefillMany(...args);
  };
  for (const i of [0, 1]) runs.push(drain(scheduler.generate(ids(i), options, [])));
  await Promise.all(runs);
  assert.equal(runs.length, 4);
  assert.equal(scheduler.peakBatch, 2, `a lane stepped ${scheduler.peakBatch} requests`);
});

test("the batch size limit counts joining requests: with --max-batch 1 and two lanes, one request at a time", async () => {
  const model1 = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
  const scheduler = new BatchScheduler(model1, 1, 2);
  // every pass lets the event loop turn first, so the other lane's loop runs while a pass is under way
  let passes = 0, most = 0;
  for (const name of ["prefillMany", "stepBatch"] as const) {
    const pass = (model1[name] as (...a: unknown[]) => Promise<Float32Array[]>).bind(model1);
    (model1 as any)[name] = async (...args: unknown[]) => {
      most = Math.max(most, ++passes);
      try {
        await new Promise((resolve) => setImmediate(resolve));
        return await pass(...args);
      } finally {
        passes--;
      }
    };
  }
  const tokens = async (i: number) => {
    const out: number[] = [];
    for await (const t of scheduler.generate(model1.promptIds(requests[i].prompt) as number[], { maxNewTokens: 4, greedy: true }, [])) out.push(t.id);
    return out;
  };
  const [a, b] = await Promise.all([tokens(0), tokens(1)]);
  assert.deepEqual([a.length, b.length], [4, 4]);
  assert.equal(most, 1, "passes under way at once");
});
