// The paper's protocol over HTTP: several samples per item at the task's sampling, graded one by one, reported
// as a mean with its standard error, a bootstrap interval and unbiased pass@k, beside Table 2's published
// columns; against a loopback endpoint that fails some requests (503, 429, a dropped connection), returns the
// thought inline or as reasoning_content, and is left mid-run (resume: no sample lost or asked twice).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { FIXTURES, tempDir } from "./helpers.ts";
import { passAtK, scoreStats } from "../benchmarks/eval/stats.ts";
import { runTask } from "../benchmarks/eval/runner.ts";
import { OpenAIBackend } from "../benchmarks/eval/backends/openai.ts";
import { ResultStore } from "../benchmarks/eval/store.ts";
import { loadPublished } from "../benchmarks/eval/published/index.ts";
import { tableRows } from "../benchmarks/arrow.ts";

test("pass@k is the unbiased estimator; stats weigh items equally; the bootstrap interval is seeded", () => {
  assert.ok(Math.abs(passAtK(5, 2, 1) - 0.4) < 1e-12);
  assert.ok(Math.abs(passAtK(5, 2, 2) - 0.7) < 1e-12); // 1 - C(3,2)/C(5,2)
  assert.equal(passAtK(4, 4, 4), 1);
  assert.equal(passAtK(4, 0, 2), 0);
  assert.throws(() => passAtK(2, 1, 4), /pass@4 needs at least 4 samples/);
  const s = scoreStats([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])!;
  assert.equal(s.mean, 0.5);
  assert.ok(Math.abs(s.stderr - 0.5 / Math.sqrt(3)) < 1e-12); // sd of (0.5, 1, 0) is 0.5
  assert.deepEqual(Object.keys(s.passAtK), ["1", "2", "4"]);
  assert.ok(Math.abs(s.passAtK[2] - (1 - 1 / 6 + 1 + 0) / 3) < 1e-12);
  assert.ok(s.ci95[0] <= s.mean && s.mean <= s.ci95[1] && s.ci95[0] >= 0 && s.ci95[1] <= 1);
  assert.deepEqual(scoreStats([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])!.ci95, s.ci95);
  assert.equal(scoreStats([]), null);
});

/** A chat endpoint on loopback answering AIME problems: right when the seed is even; some requests fail first. */
async function flakyEndpoint(answers: Map<string, string>) {
  const asked: string[] = [];
  const failed = new Set<string>();
  let inFlight = 0;
  let maxInFlight = 0;
  const server = http.createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const r = JSON.parse(body);
    const question = r.messages.at(-1).content as string;
    const key = `${question}#${r.seed}`;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inFlight--;
    if (r.seed % 5 === 1 && !failed.has(key)) {
      failed.add(key);
      if (r.seed % 2 === 0) return req.socket.destroy(); // a dropped connection
      res.writeHead(r.seed % 3 === 0 ? 429 : 503, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { message: "busy" } }));
    }
    asked.push(key);
    const answer = r.seed % 2 === 0 ? answers.get(question)! : "999";
    const message = r.seed % 4 === 0
      ? { role: "assistant", content: `<think>\nworking on it \\boxed{7}\n</think>\nSo \\boxed{${answer}}` }
      : { role: "assistant", content: `\\boxed{${answer}}`, reasoning_content: "thinking \\boxed{7}" };
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ choices: [{ index: 0, message, finish_reason: "stop" }], usage: { prompt_tokens: 100, completion_tokens: 20 } }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, asked, maxInFlight: () => maxInFlight,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

test("AIME with the paper's protocol against a flaky endpoint: samples per item, retries, resume, stats, beside Table 2", async () => {
  const file = join(FIXTURES, "published", "aime_2024.parquet");
  const probe = await loadPublished("aime2024", file);
  const answers = new Map(probe.items.map((x) => [(x.prompt as { content: string }[]).at(-1)!.content, x.target.replace(/^\\boxed\{(.*)\}$/, "$1")]));
  await probe.grader.close?.();
  const endpoint = await flakyEndpoint(answers);
  const { dir, cleanup } = tempDir();
  const store = new ResultStore(join(dir, "runs.sqlite"));
  try {
    const backend = new OpenAIBackend({ baseUrl: endpoint.url, model: "MiniMaxAI/MiniMax-M1-80k", api: "chat", concurrency: 3, backoffMs: 1 });
    // a first invocation stopped after 5 samples (an interrupt), then the rerun resumes
    const controller = new AbortController();
    const stopping = { ...backend, id: backend.id, modelName: backend.modelName, concurrency: 1,
      complete: async (r: Parameters<typeof backend.complete>[0]) => {
        if (endpoint.asked.length === 5) controller.abort();
        return backend.complete(r);
      } };
    await assert.rejects(runTask(await loadPublished("aime2024", file), stopping, { store, samples: 4, progress: null, signal: controller.signal }), { name: "AbortError" });
    assert.equal(store.runs()[0].samples, 5);
    const result = await runTask(await loadPublished("aime2024", file), backend, { store, samples: 4, progress: null });

    assert.equal(endpoint.asked.length, 12, "every sample asked once over both invocations");
    assert.equal(new Set(endpoint.asked).size, 12);
    assert.ok(endpoint.maxInFlight() <= 3);
    assert.equal(result.failures.length, 0);
    assert.equal(result.cached.length, 5);
    assert.deepEqual(result.run.settings, { maxTokens: 4096, temperature: 1, topP: 0.95, seed: 0, stop: [], samples: 4 });
    assert.equal(result.samples.length, 12);
    // seeds 0..11: even seeds answer right, so each item has 2 of 4 right; the thought never reaches the grader
    const stats = result.stats()!;
    assert.equal(stats.mean, 0.5);
    assert.equal(stats.items, 3);
    assert.ok(Math.abs(stats.passAtK[2] - 5 / 6) < 1e-12);
    assert.ok(result.samples.every((s) => !s.answer.includes("<think>") && s.thinking.includes("\\boxed{7}")));
    assert.deepEqual(result.usage(), { samples: 12, promptTokens: 1200, completionTokens: 240 });
    assert.equal(result.cost({ inputPerMillion: 0.4, outputPerMillion: 2.2 }), (1200 * 0.4 + 240 * 2.2) / 1e6);
    assert.match(result.markdown(), /mean 0\.500 ± 0\.000 \(standard error over 3 items, 12 samples\).*pass@1 0\.500, pass@2 0\.833, pass@4 1\.000/);
    assert.match(result.markdown(), /Table 2, AIME 2024, MiniMax-M1-80k: 86\.0% published; this run 50\.0%/);
    const rows = tableRows(result.paperComparison()!.data).filter((r) => r.task === "AIME 2024");
    assert.deepEqual(rows.at(-1), { category: "Math", task: "AIME 2024", model: "MiniMax-M1-80k (this run)", score: 50, footnoted: false, thinking_budget: null });
    assert.equal(rows.length, 10);
    assert.match(result.paperComparison()!.text(), /\| Math \| AIME 2024 \| 91\.6 .* 86\.0 \| 50\.0 \|/);
  } finally {
    store.close();
    await endpoint.close();
    cleanup();
  }
});
