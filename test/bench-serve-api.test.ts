// The parts of the API that M1's published examples and the serving engines describe, on `m1 serve` over real
// HTTP: function calls in M1's format (the official template's tools section, <tool_calls> parsed into OpenAI
// tool_calls, tool messages rendered back, tool_choice), logprobs and echo on completions (equal to the local
// forward pass), routing logs per generated token (equal to the router's choices in a forward pass), and the
// expert threshold with the active parameters it saves.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { M1_FIXTURE, ROOT } from "./helpers.ts";
import { Model } from "../engine/model.ts";
import { renderChatTemplate } from "../engine/tokenizer.ts";
import { parseToolCalls, renderToolCalls } from "../engine/tool-calls.ts";
import { applyExpertThreshold } from "../engine/expert-routing.ts";
import { CompletionServer } from "../kernel/openai/server.ts";
import { chatParams } from "../kernel/openai/requests.ts";
import { OpenAIBackend } from "../benchmarks/eval/backends/openai.ts";

const model = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
const server = new CompletionServer(model, "mini-80k");
const url = `http://127.0.0.1:${await server.listen(0)}/v1`;
after(() => server.close());
const post = async (path: string, body: Record<string, unknown>): Promise<{ status: number; json: any }> => {
  const res = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "mini-80k", ...body }) });
  return { status: res.status, json: await res.json() };
};
const PROMPT = "<s> 4 8 2 + 9 3 7 = <think>";

test("M1 tool calls: parsed from the <tool_calls> block (after the thought), malformed blocks stay text, rendered back as written", () => {
  const text = '<think>\nI need the weather.\n</think>\nLet me check.\n<tool_calls>\n{"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}\n{"name": "get_time", "arguments": {}}\n</tool_calls>';
  const parsed = parseToolCalls(text);
  assert.equal(parsed.content, "<think>\nI need the weather.\n</think>\nLet me check.");
  assert.deepEqual(parsed.toolCalls.map((c) => [c.type, c.function.name, JSON.parse(c.function.arguments)]), [["function", "get_weather", { location: "Paris", unit: "celsius" }], ["function", "get_time", {}]]);
  assert.match(parsed.toolCalls[0].id, /^call_[0-9a-f]{24}$/);
  const bad = parseToolCalls("<tool_calls>\n{name: get_weather}\n</tool_calls>");
  assert.deepEqual([bad.content, bad.toolCalls, /not a JSON object/.test(bad.error!)], ["<tool_calls>\n{name: get_weather}\n</tool_calls>", [], true]);
  assert.equal(parseToolCalls('<tool_calls>\n{"name": "f", "arguments": [1]}\n</tool_calls>').toolCalls.length, 0);
  assert.deepEqual(parseToolCalls("no calls"), { content: "no calls", toolCalls: [], error: null });
  assert.equal(renderToolCalls([{ name: "f", arguments: '{"x": 1}' }]), '<tool_calls>\n{"name":"f","arguments":{"x":1}}\n</tool_calls>');
});

test("an OpenAI conversation with tools, a call and its result renders through the official M1 template exactly", () => {
  const p = chatParams({
    model: "m", tool_choice: "auto",
    tools: [{ type: "function", function: { name: "f", description: "d", parameters: { type: "object", properties: {} } } }],
    messages: [
      { role: "system", content: "SYS" }, { role: "user", content: "U1" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: '{"a": 2}' } }] },
      { role: "tool", tool_call_id: "call_1", content: "R" }, { role: "user", content: "U2" },
    ],
  }, "m");
  const template = JSON.parse(fs.readFileSync(join(M1_FIXTURE, "tokenizer_config.json"), "utf8")).chat_template;
  const rendered = renderChatTemplate(template, { messages: p.messages, tools: p.tools, add_generation_prompt: true });
  assert.equal(rendered,
    "<begin_of_document><beginning_of_sentence>system ai_setting=assistant\nSYS<end_of_sentence>\n" +
    "<beginning_of_sentence>system tool_setting=tools\nYou are provided with these tools:\n<tools>\n" +
    '{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}\n</tools>\n\n' +
    "If you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide tool-name and json-object of arguments, following the format below:\n" +
    "<tool_calls>\n{name: <tool-name-1>, arguments: <args-json-object-1>}\n...\n</tool_calls><end_of_sentence>\n" +
    "<beginning_of_sentence>user name=user\nU1<end_of_sentence>\n" +
    '<beginning_of_sentence>ai name=assistant\n<tool_calls>\n{"name":"f","arguments":{"a":2}}\n</tool_calls><end_of_sentence>\n' +
    "<beginning_of_sentence>tool name=tools\ntool name: f\ntool result: R\n\n<end_of_sentence>\n" +
    "<beginning_of_sentence>user name=user\nU2<end_of_sentence>\n" +
    "<beginning_of_sentence>ai name=assistant\n");
  assert.throws(() => chatParams({ model: "m", messages: [{ role: "tool", tool_call_id: "nope", content: "R" }] }, "m"), /needs "name" or the "tool_call_id"/);
  assert.throws(() => chatParams({ model: "m", tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "g" } }, messages: [{ role: "user", content: "x" }] }, "m"), /names "g", which is not in "tools"/);
  assert.throws(() => chatParams({ model: "m", tool_choice: "required", messages: [{ role: "user", content: "x" }] }, "m"), /no "tools" are given/);
  assert.deepEqual(chatParams({ model: "m", tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "f" } }, messages: [{ role: "user", content: "x" }] }, "m").toolChoice, { name: "f" });
});

test("the eval backends take calls from the server's tool_calls or from M1-format text", async () => {
  const answers = [
    { role: "assistant", content: '<think>t</think>\n<tool_calls>\n{"name": "f", "arguments": {"x": 1}}\n</tool_calls>' },
    { role: "assistant", content: null, tool_calls: [{ id: "call_9", type: "function", function: { name: "g", arguments: "{}" } }] },
  ];
  const s = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end(JSON.stringify({ choices: [{ message: answers.shift(), finish_reason: "tool_calls" }] })));
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  try {
    const b = new OpenAIBackend({ baseUrl: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1`, model: "m", api: "chat" });
    const first = await b.complete({ prompt: "q", maxTokens: 8, temperature: 0 });
    assert.equal(first.text, "<think>t</think>");
    assert.deepEqual(first.toolCalls!.map((c) => [c.function.name, c.function.arguments]), [["f", '{"x":1}']]);
    const second = await b.complete({ prompt: "q", maxTokens: 8, temperature: 0 });
    assert.deepEqual([second.text, second.toolCalls![0].id], ["", "call_9"]);
  } finally {
    s.closeAllConnections();
    s.close();
  }
});

test("m1 serve: tool requests it cannot serve get 400 naming the reason", async () => {
  const tools = [{ type: "function", function: { name: "add", parameters: { type: "object", properties: {} } } }];
  const noTemplate = await post("/chat/completions", { messages: [{ role: "user", content: "1 + 2 =" }], tools });
  assert.equal(noTemplate.status, 400);
  assert.match(noTemplate.json.error.message, /has no chat template, so it cannot be shown tools/);
  const none = await post("/chat/completions", { messages: [{ role: "user", content: "1 + 2 = <think>" }], tools, tool_choice: "none", max_tokens: 4 });
  assert.equal(none.status, 200);
});

test("chat logprobs over HTTP equal the completions logprobs of the same prompt, in OpenAI's chat shape", async () => {
  const chat = await post("/chat/completions", { messages: [{ role: "user", content: PROMPT }], max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 });
  const text = await post("/completions", { prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 2 });
  const content = chat.json.choices[0].logprobs.content as { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }[];
  const lp = text.json.choices[0].logprobs;
  assert.deepEqual(content.map((c) => c.token), lp.tokens);
  assert.deepEqual(content.map((c) => c.logprob), lp.token_logprobs);
  assert.deepEqual(content.map((c) => Object.fromEntries(c.top_logprobs.map((t) => [t.token, t.logprob]))), lp.top_logprobs);
  for (const c of content) assert.deepEqual(c.bytes, [...Buffer.from(c.token)]);
  assert.equal(content.map((c) => c.token).join(""), chat.json.choices[0].message.content);
  const bad = [
    [{ logprobs: 2 }, /"logprobs" must be a boolean/],
    [{ top_logprobs: 2 }, /"top_logprobs" needs "logprobs": true/],
    [{ logprobs: true, top_logprobs: 21 }, /"top_logprobs" must be an integer in \[0, 20\]/],
  ] as const;
  for (const [fields, message] of bad) {
    const r = await post("/chat/completions", { messages: [{ role: "user", content: PROMPT }], ...fields });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, message);
  }
});

/** log-softmax of one row of logits, in double precision. */
function logSoftmax(row: Float32Array): number[] {
  const max = Math.max(...row);
  const logZ = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
  return [...row].map((x) => x - logZ);
}

test("logprobs with echo and max_tokens 0 score a text over HTTP exactly as the local forward pass", async () => {
  const text = "<s> 1 2 + 3 4 = <think> 6 4 , </think> 4 6";
  const { status, json } = await post("/completions", { prompt: text, max_tokens: 0, echo: true, logprobs: 3, temperature: 0 });
  assert.equal(status, 200);
  const lp = json.choices[0].logprobs;
  const ids = model.tokenizer!.encode(text);
  const logits = (await model.forward(ids)).logits;
  const vocab = logits.shape[1];
  const data = logits.f32;
  assert.equal(json.choices[0].text, text);
  assert.equal(lp.tokens.length, ids.length);
  assert.equal(lp.token_logprobs[0], null);
  for (let i = 1; i < ids.length; i++) {
    const expected = logSoftmax(data.subarray((i - 1) * vocab, i * vocab))[ids[i]];
    assert.ok(Math.abs(lp.token_logprobs[i] - expected) < 1e-5, `token ${i}: ${lp.token_logprobs[i]} vs ${expected}`);
    assert.equal(Object.keys(lp.top_logprobs[i]).length, 3);
  }
  assert.equal(lp.tokens.join(""), text);
  assert.deepEqual(lp.text_offset.slice(0, 3), [0, 3, 5]); // "<s>", " 1", " 2": offsets into the echoed text
});

test("logprobs of generated tokens: greedy picks the top alternative; without echo the text is the completion only", async () => {
  const { json } = await post("/completions", { prompt: PROMPT, max_tokens: 6, logprobs: 2, temperature: 0 });
  const lp = json.choices[0].logprobs;
  assert.equal(lp.tokens.join(""), json.choices[0].text);
  lp.tokens.forEach((t: string, i: number) => {
    const [best, value] = Object.entries(lp.top_logprobs[i] as Record<string, number>).sort((a, b) => b[1] - a[1])[0];
    assert.equal(best, t);
    assert.ok(Math.abs(value - lp.token_logprobs[i]) < 1e-12 && lp.token_logprobs[i] <= 0);
  });
});

test("routing logs: per generated token, each layer's experts and weights, as the router chose them in a forward pass", async () => {
  const { json } = await post("/completions", { prompt: PROMPT, max_tokens: 5, temperature: 0, routing_logs: true });
  const routing = json.choices[0].routing as { token: string; layers: { layer: number; experts: number[]; weights: number[] }[] }[];
  assert.equal(routing.length, 5);
  assert.equal(routing.map((r) => r.token).join(""), json.choices[0].text);
  const prompt = model.tokenizer!.encode(PROMPT);
  const generated = model.tokenizer!.encode(json.choices[0].text.trim()).filter((id) => id !== 1);
  const full = [...prompt, ...generated];
  const { activations } = await model.runWithCache(full, /moe\.hook_topk_(idx|weights)$/);
  for (const [i, r] of routing.entries()) {
    assert.equal(r.layers.length, model.config.numLayers);
    for (const { layer, experts, weights } of r.layers) {
      const pos = prompt.length - 1 + i;
      const k = model.config.topK;
      const idx = activations.get(`blocks.${layer}.moe.hook_topk_idx`).i32;
      const w = activations.get(`blocks.${layer}.moe.hook_topk_weights`).f32;
      assert.deepEqual(experts, [...idx.subarray(pos * k, pos * k + k)]);
      [...w.subarray(pos * k, pos * k + k)].forEach((x, j) => assert.ok(Math.abs(weights[j] - x) < 1e-5)); // decode steps vs one prefill: f32 rounding
    }
  }
});

test("expert threshold: 0 changes nothing; 1 keeps only the top expert; usage reports the active parameters saved per token", async () => {
  const w = new Float32Array([0.7, 0.3, 0.5, 0.5, 0.9, 0.1]);
  assert.equal(applyExpertThreshold(w, 3, 2, 0.4), 2);
  assert.deepEqual([...w], [1, 0, 0.5, 0.5, 1, 0]);
  const plain = await post("/completions", { prompt: PROMPT, max_tokens: 12, temperature: 0 });
  const zero = await post("/completions", { prompt: PROMPT, max_tokens: 12, temperature: 0, expert_threshold: 0 });
  assert.equal(zero.json.choices[0].text, plain.json.choices[0].text);
  assert.equal(zero.json.usage.active_params_saved_per_token, 0);
  const top1 = await post("/completions", { prompt: PROMPT, max_tokens: 12, temperature: 0, expert_threshold: 1, routing_logs: true });
  const { numLayers, topK, intermediateSize, hiddenSize } = model.config;
  assert.equal(top1.json.usage.expert_threshold, 1);
  assert.equal(top1.json.usage.active_params_saved_per_token, numLayers * (topK - 1) * 3 * intermediateSize * hiddenSize);
  assert.ok(top1.json.usage.active_params_per_token > top1.json.usage.active_params_saved_per_token);
  for (const r of top1.json.choices[0].routing) for (const l of r.layers) assert.deepEqual([...l.weights].sort(), [0, 1]);
  const bad = await post("/completions", { prompt: PROMPT, expert_threshold: 2 });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /"expert_threshold" must be a number in \[0, 1\]/);
});
