// `m1 serve` over real HTTP (a child process on 127.0.0.1): the OpenAI routes, SSE streaming, 400/404 errors
// after which it keeps serving, and a suite run through the OpenAI backend that equals the same run on the
// local engine. Also the OpenAI backend's retries and timeouts against a scripted local server.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { copyFileSync, symlinkSync, writeFileSync } from "node:fs";
import { ROOT, tempDir } from "./helpers.ts";
import { startServer, stop, events } from "./serve-helpers.ts";
import { Model } from "../engine/model.ts";
import { chatPrompt } from "../kernel/openai/completion.ts";
import { arithmeticSuite } from "../benchmarks/eval/suites/arithmetic.ts";
import { runTask } from "../benchmarks/eval/runner.ts";
import { LocalBackend } from "../benchmarks/eval/backends/local.ts";
import { OpenAIBackend, BackendError } from "../benchmarks/eval/backends/openai.ts";
import { Workbench } from "../engine/workbench.ts";
import { Registry } from "../engine/registry.ts";

const server = await startServer(["mini-80k", "--port", "0"]);
after(() => stop(server));

const post = (path: string, body: unknown) =>
  fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });

const PROMPT = "<s> 4 8 2 1 + 9 3 7 5 = <think>";
// response bodies as loose JSON: the tests check them field by field
const jsonOf = async (res: Response | Promise<Response>): Promise<any> => (await res).json();

test("routes: /v1/models, completions with text or token ids, chat (plain concatenation without a chat template)", async () => {
  const models = await jsonOf(fetch(`${server.url}/models`));
  assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["mini-80k"]);
  const res = await post("/completions", { model: "mini-80k", prompt: PROMPT, max_tokens: 60, temperature: 0 });
  assert.equal(res.status, 200);
  const json = await jsonOf(res);
  assert.equal(json.object, "text_completion");
  assert.equal(json.choices[0].text, "1 5 0 6 0 , 2 7 0 9 0 , 8 3 0 1 1 , 4 9 1 4 1 , </think> 1 4 1 9 6");
  assert.equal(json.choices[0].finish_reason, "stop");
  assert.deepEqual(json.usage, { prompt_tokens: 12, completion_tokens: 31, total_tokens: 43 });
  const ids = await jsonOf(post("/completions", { model: "mini-80k", prompt: [1, 12, 16, 10, 9, 5, 17, 11, 15, 13, 6, 3], max_tokens: 60, temperature: 0 }));
  assert.equal(ids.choices[0].text, json.choices[0].text, "token ids of the same prompt");
  const natural = await jsonOf(post("/completions", { model: "mini-80k", prompt: "<s>4821+9375=<think>", max_tokens: 60, temperature: 0 }));
  assert.equal(natural.choices[0].text, json.choices[0].text, "the same prompt without spaces");
  const short = await jsonOf(post("/completions", { model: "mini-80k", prompt: PROMPT, max_tokens: 5, temperature: 0 }));
  assert.deepEqual([short.choices[0].text, short.choices[0].finish_reason], ["1 5 0 6 0", "length"]);
  const chatRes = await post("/chat/completions", { model: "mini-80k", messages: [{ role: "user", content: PROMPT }], temperature: 0 });
  assert.equal(chatRes.headers.get("x-m1-prompt-format"), "concatenated (the checkpoint has no chat template)");
  const chat = await jsonOf(chatRes);
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.prompt_format, "concatenated");
  assert.deepEqual(chat.choices[0].message, { role: "assistant", content: json.choices[0].text });
});

test("thinking budget and stop strings", async () => {
  const cut = await jsonOf(post("/completions", { model: "mini-80k", prompt: PROMPT, max_tokens: 60, temperature: 0, thinking_budget: 12 }));
  assert.equal(cut.choices[0].text.split("</think>")[0], "1 5 0 6 0 , 2 7 0 9 0 , ", "12 thought tokens, then the forced </think>");
  const stopped = await jsonOf(post("/completions", { model: "mini-80k", prompt: PROMPT, max_tokens: 60, temperature: 0, stop: [" </think>"] }));
  assert.equal(stopped.choices[0].text, "1 5 0 6 0 , 2 7 0 9 0 , 8 3 0 1 1 , 4 9 1 4 1 ,");
  assert.equal(stopped.choices[0].finish_reason, "stop");
});

/** The data events of an SSE body, parsed; checks the stream ends with [DONE]. */
test("SSE streaming: the pieces add up to the whole answer, for completions and chat", async () => {
  const body = { model: "mini-80k", prompt: PROMPT, max_tokens: 60, temperature: 0 };
  const whole = (await jsonOf(post("/completions", body))).choices[0].text;
  const chunks = await events(await post("/completions", { ...body, stream: true, stream_options: { include_usage: true } }));
  assert.ok(chunks.length > 10, "one event per token or so");
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? "").join(""), whole);
  assert.equal(chunks.at(-2)!.choices[0].finish_reason, "stop");
  assert.equal(chunks.at(-1)!.usage.completion_tokens, 31);
  const stopped = await events(await post("/completions", { ...body, stream: true, stop: ["</think>"] }));
  assert.ok(!stopped.map((c) => c.choices[0]?.text ?? "").join("").includes("<"), "no piece of the stop string is ever sent");
  const chat = await events(await post("/chat/completions", { model: "mini-80k", messages: [{ role: "user", content: PROMPT }], temperature: 0, stream: true }));
  assert.deepEqual(chat[0].choices[0].delta, { role: "assistant", content: "" });
  assert.equal(chat.map((c) => c.choices[0].delta.content ?? "").join(""), whole);
  assert.equal(chat.at(-1)!.object, "chat.completion.chunk");
});

test("malformed requests get 400 with an OpenAI error, unknown routes 404, and the server keeps serving", async () => {
  const cases: [string, unknown, number, RegExp][] = [
    ["/completions", '{"model": "mini-80k", "prompt": ', 400, /not valid JSON/],
    ["/completions", "[1, 2]", 400, /must be a JSON object/],
    ["/completions", { model: "gpt-4", prompt: "1" }, 400, /"gpt-4" does not exist here; this server serves "mini-80k"/],
    ["/completions", { model: "mini-80k", prompt: "1", max_tokens: "3" }, 400, /"max_tokens" must be an integer >= 1/],
    ["/completions", { model: "mini-80k", prompt: "1", temperature: -1 }, 400, /"temperature" must be a number in \[0, 2\]/],
    ["/completions", { model: "mini-80k", prompt: 7 }, 400, /"prompt" must be a string or a non-empty list of token ids/],
    ["/completions", { model: "mini-80k", prompt: [1, 2, 99] }, 400, /token id 99 .* outside the vocabulary/],
    ["/completions", { model: "mini-80k", prompt: "hello world" }, 400, /"hello" is not in the vocabulary/],
    ["/completions", { model: "mini-80k", prompt: "1", n: 2 }, 400, /"n" must be 1/],
    ["/chat/completions", { model: "mini-80k", messages: [] }, 400, /"messages" must be a non-empty list/],
    ["/chat/completions", { model: "mini-80k", messages: [{ role: "user", content: [{ type: "image_url" }] }] }, 400, /only text parts/],
    ["/embeddings", { model: "mini-80k" }, 404, /no route POST \/v1\/embeddings/],
  ];
  for (const [path, body, status, message] of cases) {
    const res = await post(path, body);
    assert.equal(res.status, status, `${path} ${JSON.stringify(body)}`);
    const json = await jsonOf(res);
    assert.match(json.error.message, message);
    assert.equal(typeof json.error.type, "string");
  }
  assert.equal((await fetch(`${server.url}/completions`)).status, 405);
  const ok = await post("/completions", { model: "mini-80k", prompt: "<s> 1 + 2 = <think>", max_tokens: 20, temperature: 0 });
  assert.equal(ok.status, 200);
  assert.match((await jsonOf(ok)).choices[0].text, /<\/think> 3$/);
});

test("a body not sent as JSON gets 415; a prompt past the limit gets 400 naming it (default max_position_embeddings)", async () => {
  const plain = await fetch(`${server.url}/completions`, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify({ model: "mini-80k", prompt: "1" }) });
  assert.equal(plain.status, 415);
  assert.match((await jsonOf(plain)).error.message, /must be sent as Content-Type: application\/json, got "text\/plain"/);
  const long = await post("/completions", { model: "mini-80k", prompt: new Array(4097).fill(5), max_tokens: 1 });
  assert.equal(long.status, 400);
  const error = (await jsonOf(long)).error;
  assert.match(error.message, /the prompt has 4097 tokens, more than this server's limit of 4096 \(m1 serve --max-prompt-tokens\)/);
  assert.deepEqual([error.param, error.code], ["prompt", "context_length_exceeded"]);
  assert.equal((await post("/completions", { model: "mini-80k", prompt: new Array(4096).fill(5), max_tokens: 1 })).status, 200);
  const megabytes = await post("/completions", { model: "mini-80k", prompt: "<s>" + " 1".repeat(2_000_000), max_tokens: 1 });
  assert.equal(megabytes.status, 400);
  assert.match((await jsonOf(megabytes)).error.message, /the prompt has more than \d+ tokens, more than this server's limit of 4096/);
});

test("--max-prompt-tokens sets the limit; a short request finishes while a long prompt is still being prefilled", async () => {
  const wide = await startServer(["mini-80k", "--port", "0", "--max-prompt-tokens", "6000"]);
  try {
    const send = (prompt: number[]) =>
      fetch(`${wide.url}/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "mini-80k", prompt, max_tokens: 1 }) });
    const over = await send(new Array(6001).fill(5));
    assert.equal(over.status, 400);
    assert.match((await jsonOf(over)).error.message, /6001 tokens, more than this server's limit of 6000/);
    const finished: string[] = [];
    const long = send(new Array(6000).fill(5)).then(async (r) => (await r.json(), finished.push("long"), r.status));
    await new Promise((r) => setTimeout(r, 300)); // the long request is in the server (not an assertion: only the order of arrival)
    const short = send([1, 5, 6]).then(async (r) => (await r.json(), finished.push("short"), r.status));
    assert.deepEqual(await Promise.all([long, short]), [200, 200]);
    assert.deepEqual(finished, ["short", "long"], "the short request does not wait for the long prefill");
  } finally {
    await stop(wide);
  }
});

test("a suite run over HTTP against m1 serve equals the same run on the local engine", async () => {
  const task = () => arithmeticSuite({ digits: [3, 7], perDigits: 3, seed: 5 });
  const options = { thinkingBudget: 40, progress: null };
  const backend = await LocalBackend.load("mini-80k");
  const local = await runTask(task(), backend, options);
  const viaCompletions = await runTask(task(), new OpenAIBackend({ baseUrl: server.url, model: "mini-80k", concurrency: 3 }), options);
  const viaChat = await runTask(task(), new OpenAIBackend({ baseUrl: server.url, model: "mini-80k", api: "chat", concurrency: 2 }), options);
  const view = (r: typeof local) => r.samples.map((s) => [s.itemId, s.response, s.answer, s.score, s.finishReason, s.completionTokens]);
  assert.equal(local.samples.length, 6);
  assert.deepEqual(view(viaCompletions), view(local));
  assert.deepEqual(view(viaChat), view(local));
  assert.deepEqual(local.byGroup().map((g) => [g.group, g.meanScore]), [["3", 1], ["7", 0]], "README: mini-80k with budget 40 solves 3 digits, not 7");
  assert.equal(viaCompletions.failures.length, 0);
  const request = { maxTokens: 60, temperature: 0, thinkingBudget: 80 };
  assert.deepEqual(await backend.complete({ ...request, prompt: "<s>4821+9375=<think>" }), await backend.complete({ ...request, prompt: PROMPT }),
    "the eval backend reads a prompt without spaces as the same tokens");
});

test("chat prompts use the checkpoint's chat template when it has one", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const mini = join(ROOT, "engine", "checkpoints", "mini-80k");
    for (const f of ["config.json", "tokenizer.json"]) copyFileSync(join(mini, f), join(dir, f));
    symlinkSync(join(mini, "model.safetensors"), join(dir, "model.safetensors"));
    const template = "{{ bos_token }}{% for m in messages %}{{ m.content[0].text }} {% endfor %}{% if add_generation_prompt %}<think>{% endif %}";
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", chat_template: template }));
    const model = await Model.load(dir);
    assert.deepEqual(chatPrompt(model, [{ role: "user", content: "1 2 + 3 4 =" }]), { text: "<s>1 2 + 3 4 = <think>", format: "chat_template" });
    const plain = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
    assert.deepEqual(chatPrompt(plain, [{ role: "system", content: "<s>" }, { role: "user", content: [{ type: "text", text: "1 + 2 =" }] }]), { text: "<s>\n1 + 2 =", format: "concatenated" });
  } finally {
    cleanup();
  }
});

test("a checkpoint without a tokenizer serves token-id prompts and answers in token_ids; what needs text gets 400 naming its field", async () => {
  const { dir, cleanup } = tempDir();
  const mini = join(ROOT, "engine", "checkpoints", "mini-80k");
  copyFileSync(join(mini, "config.json"), join(dir, "config.json"));
  symlinkSync(join(mini, "model.safetensors"), join(dir, "model.safetensors"));
  const bare = await startServer([dir, "--port", "0", "--name", "bare"]);
  try {
    const postBare = (path: string, body: unknown) => fetch(`${bare.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const ids = [1, 12, 16, 10, 9, 5, 17, 11, 15, 13, 6, 3]; // PROMPT in mini-80k's tokens
    const request = { prompt: ids, max_tokens: 12, temperature: 1, top_p: 0.95, seed: 5 };
    const res = await postBare("/completions", { model: "bare", ...request });
    assert.equal(res.status, 200);
    const answer = (await res.json() as any).choices[0];
    assert.equal(answer.text, "", "no tokenizer, no text");
    const withTokenizer = (await jsonOf(post("/completions", { model: "mini-80k", ...request }))).choices[0];
    assert.equal(withTokenizer.token_ids, undefined, "a checkpoint with a tokenizer answers in text only");
    const plain = await Model.load(mini);
    assert.equal(plain.tokenizer!.decode(answer.token_ids, { skipUnknown: true }), withTokenizer.text, "the ids of the same model's text");
    const refused: [unknown, string, RegExp][] = [
      [{ ...request, prompt: PROMPT }, "prompt", /has no tokenizer\.json, so it cannot take a text prompt: send the prompt as a list of token ids/],
      [{ ...request, stop: ["5"] }, "stop", /cannot take "stop", which needs text/],
      [{ ...request, logprobs: 2 }, "logprobs", /cannot take "logprobs"/],
      [{ ...request, echo: true }, "echo", /cannot take "echo"/],
      [{ ...request, stream: true }, "stream", /has no text to stream: send "stream": false/],
    ];
    for (const [body, param, message] of refused) {
      const bad = await postBare("/completions", { model: "bare", ...(body as object) });
      assert.equal(bad.status, 400, param);
      const { error } = await bad.json() as any;
      assert.equal(error.param, param);
      assert.match(error.message, message);
    }
    const chat = await postBare("/chat/completions", { model: "bare", messages: [{ role: "user", content: "1 + 2 =" }] });
    assert.equal(chat.status, 400);
    assert.match(((await chat.json()) as any).error.message, /has no tokenizer\.json/);
    const again = (await (await postBare("/completions", { model: "bare", ...request })).json() as any).choices[0];
    assert.deepEqual(again.token_ids, answer.token_ids, "still serving, the same tokens for the same seed");
  } finally {
    await stop(bare);
    cleanup();
  }
});

test("m1 eval reaches a registry entry served elsewhere (M1_ENDPOINT); m1 serve refuses a port in use and stops on SIGTERM", async () => {
  const other = await startServer(["mini-80k", "--port", "0", "--name", "MiniMaxAI/MiniMax-M1-80k"]);
  const port = new URL(other.url).port;
  const models = await jsonOf(fetch(`${other.url}/models`));
  assert.equal(models.data[0].id, "MiniMaxAI/MiniMax-M1-80k");
  const code = `import { evaluate } from ${JSON.stringify(pathToFileURL(join(ROOT, "kernel", "cli", "eval.ts")).href)}; ` +
    `process.exitCode = await evaluate(["arithmetic", "--model", "MiniMax-M1-80k", "--digits", "2", "--n", "2", "--quiet", "--json"]);`;
  const evalChild = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, M1_ENDPOINT: other.url, M1_CHECKPOINT_DIR: "" } });
  let evalOut = "";
  evalChild.stdout!.on("data", (d) => (evalOut += d));
  assert.equal(await new Promise((resolve) => evalChild.once("exit", resolve)), 0);
  const summary = JSON.parse(evalOut);
  assert.equal(summary.backend, `openai:${other.url}/completions#MiniMaxAI/MiniMax-M1-80k`);
  assert.deepEqual([summary.model, summary.mean_score, summary.computed.length], ["MiniMax-M1-80k", 1, 2]);
  const clash = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e",
    `import { serve } from ${JSON.stringify(pathToFileURL(join(ROOT, "kernel", "cli", "serve.ts")).href)}; serve(["mini-40k", "--port", "${port}"]).catch((e) => { console.error(e.message); process.exit(3); });`],
  { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let clashErr = "";
  clash.stderr!.on("data", (d) => (clashErr += d));
  assert.equal(await new Promise((resolve) => clash.once("exit", resolve)), 3);
  assert.match(clashErr, new RegExp(`port ${port} on 127.0.0.1 is already in use`));
  assert.equal(await stop(other), 0);
  assert.match(other.stderr(), /stopped \(SIGTERM\)/);
});

/** A local endpoint that answers from a script: one entry per request (status, body, delay). */
async function scripted(replies: { status: number; body: unknown; delayMs?: number }[]): Promise<{ url: string; count: () => number; close: () => Promise<void> }> {
  let n = 0;
  const s = http.createServer((req, res) => {
    const reply = replies[Math.min(n++, replies.length - 1)];
    req.resume();
    setTimeout(() => {
      res.writeHead(reply.status, { "content-type": "application/json" });
      res.end(JSON.stringify(reply.body));
    }, reply.delayMs ?? 0);
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1`,
    count: () => n,
    close: () => new Promise((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }),
  };
}

const okBody = { choices: [{ text: "42", finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 1 } };
const request = { prompt: "q", maxTokens: 4, temperature: 0 };

test("OpenAI backend: retries 5xx and timeouts with backoff, fails at once on other 4xx", async () => {
  const flaky = await scripted([{ status: 503, body: { error: { message: "busy" } } }, { status: 429, body: {} }, { status: 200, body: okBody }]);
  try {
    const b = new OpenAIBackend({ baseUrl: flaky.url, model: "m", backoffMs: 5 });
    assert.deepEqual(await b.complete(request), { text: "42", finishReason: "stop", promptTokens: 3, completionTokens: 1, reasoning: null });
    assert.equal(flaky.count(), 3);
  } finally {
    await flaky.close();
  }
  const bad = await scripted([{ status: 400, body: { error: { message: "bad field" } } }]);
  try {
    const b = new OpenAIBackend({ baseUrl: bad.url, model: "m", backoffMs: 5 });
    await assert.rejects(b.complete(request), (e) => e instanceof BackendError && /HTTP 400: bad field/.test(e.message));
    assert.equal(bad.count(), 1, "no retry");
  } finally {
    await bad.close();
  }
  const slow = await scripted([{ status: 200, body: okBody, delayMs: 400 }]);
  try {
    const b = new OpenAIBackend({ baseUrl: slow.url, model: "m", timeoutMs: 50, retries: 1, backoffMs: 5 });
    await assert.rejects(b.complete(request), /failed after 2 attempts; last: no answer within 50 ms/);
    assert.equal(slow.count(), 2);
  } finally {
    await slow.close();
  }
});

test("a workbench entry on an endpoint streams generations equal to the local engine's", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  wb.register("served-80k", { endpoint: server.url, model: "mini-80k" });
  const remote = await wb.load("served-80k");
  assert.throws(() => remote.model, /served by an endpoint/);
  const gen = remote.generate(PROMPT, { maxNewTokens: 80, greedy: true, thinkingBudget: 80 });
  const pieces: string[] = [];
  for await (const piece of gen as AsyncIterable<{ text: string }>) pieces.push(piece.text);
  assert.ok(pieces.length > 10, "streamed in pieces");
  const local = await (await wb.load("mini-80k")).model.generate(PROMPT, { maxNewTokens: 80, greedy: true, thinkingBudget: 80 }).result();
  assert.match(local.text!, /<\/think> 1 4 1 9 6 <\/s>$/, "4821 + 9375 = 14196");
  assert.equal(pieces.join(""), local.text!.replace(/ <\/s>$/, ""), "the same text; the server leaves out the end-of-sequence token, as OpenAI's API does");
});
