// Function calling end to end over real HTTP: `m1 serve` runs test/fixtures/tool-caller (a tiny M1-shaped model
// fine-tuned with the engine's trainer to answer a weather question with M1's <tool_calls>; test/make-tool-caller.ts)
// and the served model's own output comes back as OpenAI tool_calls, whole and streamed, with tool_choice
// none/auto/required/named, the calls and their results rendered back on the next turn as the official template
// renders them; chat logprobs and streamed completions logprobs; hostile requests and model output; and the same
// calls read by `m1 generate --json`.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, M1_FIXTURE, ROOT } from "./helpers.ts";
import { startServer, stop, events } from "./serve-helpers.ts";
import { Model } from "../engine/model.ts";
import { renderChatTemplate, Tokenizer } from "../engine/tokenizer.ts";
import { chatParams } from "../kernel/openai/requests.ts";
import { CompletionServer } from "../kernel/openai/server.ts";
import { ChatOutput, splitChatAnswer, type ChatDelta } from "../kernel/openai/chat-output.ts";
import { chatLogprobs, logprobEntries } from "../kernel/openai/logprobs.ts";
import { FINAL_ANSWER, LEAD_IN, NO_TOOLS_ANSWER, QUESTION, RESULTS, THOUGHT, TIME_CALL, TOOLS, TOOL_CALLER_TURNS, WEATHER_CALL, replayedCalls } from "./tool-caller-turns.ts";

const CHECKPOINT = join(FIXTURES, "tool-caller");
const served = await startServer([CHECKPOINT, "--port", "0", "--name", "tool-caller", "--reasoning-parser", "minimax_m1"]);
after(() => stop(served));
/** the same checkpoint in this process: its tokenizer, and an in-process server without the reasoning parser */
const model = await Model.load(CHECKPOINT);

// response bodies as loose JSON: the tests check them field by field
const post = async (body: Record<string, unknown>, path = "/chat/completions"): Promise<Response> =>
  fetch(`${served.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "tool-caller", temperature: 0, ...body }) });
const json = async (body: Record<string, unknown>, path?: string): Promise<any> => (await post(body, path)).json();

/** A streamed chat answer put back together: reasoning, content, calls by index, finish reason, logprobs. */
function assemble(chunks: Record<string, any>[]) {
  const calls: { id: string; type: string; function: { name: string; arguments: string } }[] = [];
  let reasoning = "";
  let content = "";
  const logprobs: unknown[] = [];
  for (const c of chunks) {
    const { delta } = c.choices[0];
    reasoning += delta.reasoning_content ?? "";
    content += delta.content ?? "";
    logprobs.push(...(c.choices[0].logprobs?.content ?? []));
    for (const t of delta.tool_calls ?? []) {
      if (t.id !== undefined) {
        assert.equal(t.index, calls.length, "a call's first delta comes with the next index");
        calls.push({ id: t.id, type: t.type, function: { name: t.function.name, arguments: t.function.arguments } });
      } else {
        calls[t.index].function.arguments += t.function.arguments;
      }
    }
  }
  return { reasoning, content, calls, finish: chunks.at(-1)!.choices[0].finish_reason, logprobs };
}

const callsOf = (calls: { function: { name: string; arguments: string } }[]) => calls.map((c) => ({ name: c.function.name, arguments: JSON.parse(c.function.arguments) }));

test("the served model's call comes back as OpenAI tool_calls (auto): thought, lead-in, two calls with ids", async () => {
  const r = await json({ messages: [QUESTION], tools: TOOLS });
  const { message, finish_reason } = r.choices[0];
  assert.equal(finish_reason, "tool_calls");
  assert.equal(message.reasoning_content, THOUGHT);
  assert.equal(message.content, LEAD_IN);
  assert.deepEqual(callsOf(message.tool_calls), [WEATHER_CALL, TIME_CALL]);
  for (const c of message.tool_calls) {
    assert.equal(c.type, "function");
    assert.match(c.id, /^call_[0-9a-f]{24}$/);
  }
  assert.notEqual(message.tool_calls[0].id, message.tool_calls[1].id);
  assert.equal(r.usage.completion_tokens, new TextEncoder().encode(TOOL_CALLER_TURNS[0].answer).length + 1); // bytes + <end_of_sentence>
});

test("streamed: reasoning_content and content deltas, then each call as index/id/name and its arguments, finish tool_calls", async () => {
  const chunks = await events(await post({ messages: [QUESTION], tools: TOOLS, stream: true }));
  assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const s = assemble(chunks);
  assert.equal(s.reasoning, THOUGHT);
  assert.equal(s.content, LEAD_IN);
  assert.deepEqual(callsOf(s.calls), [WEATHER_CALL, TIME_CALL]);
  assert.equal(s.finish, "tool_calls");
  assert.ok(chunks.filter((c) => c.choices[0].delta.reasoning_content !== undefined).length > 5, "the thought streams token by token");
  const headers = chunks.flatMap((c) => c.choices[0].delta.tool_calls ?? []).filter((t) => t.id !== undefined);
  assert.deepEqual(headers.map((t) => [t.index, t.type, t.function.name, t.function.arguments]), [[0, "function", "get_weather", ""], [1, "function", "get_time", ""]]);
});

test("tool_choice: required starts the answer with the calls, a named function gets its call alone, none hides the tools", async () => {
  for (const stream of [false, true]) {
    const answer = async (body: Record<string, unknown>) => {
      if (!stream) {
        const { message, finish_reason } = (await json(body)).choices[0];
        return { reasoning: message.reasoning_content ?? "", content: message.content, calls: message.tool_calls ?? [], finish: finish_reason };
      }
      const s = assemble(await events(await post({ ...body, stream: true })));
      return { ...s, content: s.calls.length && !s.content ? null : s.content };
    };
    const required = await answer({ messages: [QUESTION], tools: TOOLS, tool_choice: "required" });
    assert.deepEqual([required.content, callsOf(required.calls), required.finish], [null, [WEATHER_CALL, TIME_CALL], "tool_calls"], `stream ${stream}`);
    const named = await answer({ messages: [QUESTION], tools: TOOLS, tool_choice: { type: "function", function: { name: "get_time" } } });
    assert.deepEqual([named.content, callsOf(named.calls), named.finish], [null, [TIME_CALL], "tool_calls"], `stream ${stream}`);
    // started with get_weather's call, the model would go on to get_time (as under "required"): a named function gets its call alone
    const weather = await answer({ messages: [QUESTION], tools: TOOLS, tool_choice: { type: "function", function: { name: "get_weather" } } });
    assert.deepEqual([weather.content, callsOf(weather.calls), weather.finish], [null, [WEATHER_CALL], "tool_calls"], `stream ${stream}`);
    const none = await answer({ messages: [QUESTION], tools: TOOLS, tool_choice: "none" });
    assert.deepEqual([none.reasoning, none.content, none.calls, none.finish], ["No tools.", NO_TOOLS_ANSWER, [], "stop"], `stream ${stream}`);
  }
});

test("the next turn: the calls and tool results render as the official M1 template renders them, and the model answers from them", async () => {
  const first = (await json({ messages: [QUESTION], tools: TOOLS })).choices[0].message;
  const ids = first.tool_calls.map((c: { id: string }) => c.id) as [string, string];
  const messages = [QUESTION, replayedCalls(ids), ...RESULTS.map((content, i) => ({ role: "tool", tool_call_id: ids[i], content }))];
  const r = await json({ messages, tools: TOOLS });
  assert.equal(r.choices[0].message.reasoning_content, "The tools answered.");
  assert.equal(r.choices[0].message.content, FINAL_ANSWER);
  assert.equal(r.choices[0].finish_reason, "stop");
  // the prompt the server fed the model is the official template's rendering, token for token
  const template = JSON.parse(fs.readFileSync(join(M1_FIXTURE, "tokenizer_config.json"), "utf8")).chat_template;
  const p = chatParams({ model: "m", messages, tools: TOOLS }, "m");
  const official = renderChatTemplate(template, { messages: p.messages, tools: p.tools, add_generation_prompt: true });
  assert.ok(official.endsWith(
    '<beginning_of_sentence>ai name=assistant\nLet me check.\n<tool_calls>\n{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}\n{"name":"get_time","arguments":{"city":"Paris"}}\n</tool_calls><end_of_sentence>\n' +
    "<beginning_of_sentence>tool name=tools\ntool name: get_weather\ntool result: 18 C, sunny\n\n<end_of_sentence>\n" +
    "<beginning_of_sentence>tool name=tools\ntool name: get_time\ntool result: 14:05\n\n<end_of_sentence>\n" +
    "<beginning_of_sentence>ai name=assistant\n"));
  assert.equal(r.usage.prompt_tokens, model.tokenizer!.encode(official).length);
});

test("chat logprobs: per generated token {token, logprob, bytes, top_logprobs}, the same streamed and whole", async () => {
  const body = { messages: [QUESTION], tools: TOOLS, logprobs: true, top_logprobs: 3 };
  const whole = (await json(body)).choices[0];
  const content = whole.logprobs.content as { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number }[] }[];
  assert.equal(content.map((c) => c.token).join(""), TOOL_CALLER_TURNS[0].answer); // the raw answer, thought and calls included
  for (const c of content) {
    assert.ok(c.logprob <= 0 && c.logprob > -0.1, `${JSON.stringify(c.token)}: ${c.logprob} (the model learnt its answer)`);
    assert.deepEqual(c.bytes, [...Buffer.from(c.token)]);
    assert.equal(c.top_logprobs.length, 3);
    assert.deepEqual([c.top_logprobs[0].token, c.top_logprobs[0].logprob], [c.token, c.logprob]); // greedy: the top one
  }
  const streamed = assemble(await events(await post({ ...body, stream: true })));
  assert.deepEqual(streamed.logprobs, content);
  assert.deepEqual(callsOf(streamed.calls), callsOf(whole.message.tool_calls));
});

test("chat logprobs bytes: a byte-level token that is part of a UTF-8 character gives its own byte", async () => {
  const tokenizer = model.tokenizer!;
  const ids = tokenizer.encode("é!");
  assert.deepEqual(ids, [0xc3, 0xa9, 0x21]);
  const logits = new Float32Array(model.config.vocabSize);
  const [first, second, third] = chatLogprobs(logprobEntries(tokenizer, ids, () => logits, 1)).content;
  assert.deepEqual([first.bytes, second.bytes, third.bytes, third.token], [[0xc3], [0xa9], [0x21], "!"]);
  assert.equal(Buffer.from([...first.bytes, ...second.bytes]).toString("utf8"), "é");
  assert.ok(first.logprob === second.logprob && Math.abs(first.logprob + Math.log(model.config.vocabSize)) < 1e-6); // uniform logits
  assert.deepEqual(tokenizer.tokenBytes(tokenizer.tokenId("<end_of_sentence>")!), [...Buffer.from("<end_of_sentence>")]);
  assert.equal(tokenizer.tokenBytes(100000), null);
  const wordLevel = (await Tokenizer.load(join(ROOT, "engine", "checkpoints", "mini-80k")))!;
  assert.equal(wordLevel.tokenBytes(wordLevel.tokenId("7")!), null); // not byte-level: the UTF-8 of the token's text is used
});

test("completions logprobs and echo stream: the chunks' logprobs add up to the whole answer's", async () => {
  const body = { prompt: "<beginning_of_sentence>user name=user\nHi", max_tokens: 12, logprobs: 2, echo: true };
  const whole = (await json(body, "/completions")).choices[0];
  const chunks = await events(await post({ ...body, stream: true }, "/completions"));
  const texts = chunks.map((c) => c.choices[0].text).join("");
  assert.equal(texts, whole.text);
  const lp = chunks.map((c) => c.choices[0].logprobs).filter(Boolean);
  const joined = (field: string) => lp.flatMap((l) => l[field]);
  for (const field of ["tokens", "token_logprobs", "top_logprobs", "text_offset"]) assert.deepEqual(joined(field), whole.logprobs[field], field);
  assert.equal(whole.logprobs.token_logprobs[0], null);
  assert.equal(joined("tokens").join(""), whole.text);
});

test("hostile requests get 400 naming the field; the server keeps serving", async () => {
  const fn = (f: Record<string, unknown>) => ({ type: "function", function: f });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ tools: "get_weather" }, /"tools" must be a list/],
    [{ tools: [fn({ description: "no name" })] }, /tools\[0\] must be \{type: "function", function: \{name: string/],
    [{ tools: [fn({ name: "get weather!" })] }, /tools\[0\]\.function\.name must be 1-64 letters, digits, _ or -/],
    [{ tools: [fn({ name: "f" }), fn({ name: "f" })] }, /tools\[1\]\.function\.name "f" is given twice/],
    [{ tools: [fn({ name: "f", parameters: "{}" })] }, /tools\[0\]\.function\.parameters must be a JSON schema object/],
    [{ tools: [fn({ name: "f", parameters: { type: "array" } })] }, /of type "object"/],
    [{ tools: [fn({ name: "f", description: 7 })] }, /tools\[0\]\.function\.description must be a string/],
    [{ tools: TOOLS, tool_choice: { type: "function", function: { name: "rm_rf" } } }, /"tool_choice" names "rm_rf", which is not in "tools"/],
    [{ tools: TOOLS, tool_choice: "always" }, /"tool_choice" must be "none", "auto", "required"/],
    [{ tool_choice: "required" }, /no "tools" are given/],
    [{ messages: [QUESTION, { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{oops" } }] }] }, /arguments is not valid JSON/],
    [{ messages: [QUESTION, { role: "tool", tool_call_id: "never_made", content: "x" }] }, /a tool message needs "name" or the "tool_call_id"/],
  ];
  for (const [fields, message] of cases) {
    const res = await post({ messages: [QUESTION], ...fields });
    assert.equal(res.status, 400, JSON.stringify(fields));
    const body = (await res.json()) as any;
    assert.match(body.error.message, message);
    assert.equal(body.error.type, "invalid_request_error");
  }
  assert.equal((await json({ messages: [QUESTION], tools: TOOLS })).choices[0].finish_reason, "tool_calls");
});

test("a call cut off mid-line (max_tokens) is malformed: it stays text, whole and streamed, with finish_reason length", async () => {
  const cut = TOOL_CALLER_TURNS[0].answer.indexOf('"arguments"'); // bytes = tokens: the answer is ASCII
  const body = { messages: [QUESTION], tools: TOOLS, max_tokens: cut };
  const whole = (await json(body)).choices[0];
  assert.equal(whole.finish_reason, "length");
  assert.equal(whole.message.tool_calls, undefined);
  assert.equal(whole.message.content, `${LEAD_IN}\n<tool_calls>\n{"name": "get_weather", `.trimEnd());
  const s = assemble(await events(await post({ ...body, stream: true })));
  assert.deepEqual([s.content, s.calls, s.finish, s.reasoning], [whole.message.content, [], "length", THOUGHT]);
});

test("a client that disconnects mid-stream stops its generation; the server keeps serving", async () => {
  // in the shared batch, and alone (logprobs need the engine to themselves)
  for (const extra of [{}, { logprobs: true }]) {
    const aborter = new AbortController();
    const res = await fetch(`${served.url}/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" }, signal: aborter.signal,
      body: JSON.stringify({ model: "tool-caller", messages: [QUESTION], tools: TOOLS, stream: true, temperature: 0, ...extra }),
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk
    aborter.abort();
    await reader.read().catch(() => null);
  }
  const again = await json({ messages: [QUESTION], tools: TOOLS, stream: false });
  assert.deepEqual(callsOf(again.choices[0].message.tool_calls), [WEATHER_CALL, TIME_CALL]);
  assert.doesNotMatch(served.stderr(), /Error/);
});

test("without a reasoning parser the thought stays in content; the calls are still taken out (in-process server, same model)", async () => {
  const server = new CompletionServer(model, "tool-caller");
  const url = `http://127.0.0.1:${await server.listen(0)}/v1/chat/completions`;
  try {
    const r: any = await (await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "tool-caller", messages: [QUESTION], tools: TOOLS, temperature: 0 }) })).json();
    assert.equal(r.choices[0].message.content, `<think>\n${THOUGHT}\n</think>\n${LEAD_IN}`);
    assert.equal(r.choices[0].message.reasoning_content, undefined);
    assert.deepEqual(callsOf(r.choices[0].message.tool_calls), [WEATHER_CALL, TIME_CALL]);
  } finally {
    await server.close();
  }
});

test("m1 generate --json reads the same model's calls with the same parser", () => {
  const p = chatParams({ model: "m", messages: [QUESTION], tools: TOOLS }, "m");
  const prompt = model.tokenizer!.renderChat(p.messages, { addGenerationPrompt: true, tools: p.tools });
  const r = spawnSync(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "generate", CHECKPOINT, "--prompt", prompt, "--greedy", "--max-new", "300", "--json"], { encoding: "utf8", cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.text, `${TOOL_CALLER_TURNS[0].answer}<end_of_sentence>`);
  assert.deepEqual(callsOf(out.tool_calls), [WEATHER_CALL, TIME_CALL]);
});

/** Deltas of `text` pushed in pieces cut at `cuts`. */
function pushed(text: string, cuts: number[], options: { reasoning: boolean; tools: boolean }): { deltas: ChatDelta[]; output: ChatOutput } {
  const output = new ChatOutput(options);
  const deltas: ChatDelta[] = [];
  let at = 0;
  for (const c of [...cuts, text.length]) {
    deltas.push(...output.push(text.slice(at, c)));
    at = c;
  }
  return { deltas: [...deltas, ...output.end()], output };
}

test("ChatOutput: any cutting of hostile answers into pieces streams what the whole answer gives", () => {
  const texts = [
    TOOL_CALLER_TURNS[0].answer,
    "<think>\n never closed  ",
    "  <thi",
    "<think></think>",
    "plain <tool_calls>\n{bad json}\n</tool_calls> after",
    'a <tool_calls>\n{"name": "f", "arguments": {"x": "</tool_calls>"}}\n</tool_calls> b',
    '<tool_calls>\n{"name": "f", "arguments": {}}\n</tool_calls>\n\n<tool_calls>\n{"name": "g", "arguments": [1]}\n</tool_calls>\n  tail \n',
    '<tool_calls>\n{"name": "f", "arguments": {"x": 1}}\n',
    "<tool_calls></tool_calls>",
    "text <tool_ca",
    "</think> <tool_calls> <tool_calls>\n</tool_calls>",
  ];
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (const text of texts) {
    for (const options of [{ reasoning: true, tools: true }, { reasoning: false, tools: true }, { reasoning: true, tools: false }, { reasoning: false, tools: false }]) {
      const whole = splitChatAnswer(text, options);
      for (let trial = 0; trial < 20; trial++) {
        const cuts = trial === 0 ? Array.from({ length: text.length }, (_, i) => i) : Array.from({ length: 4 }, () => Math.floor(random() * text.length)).sort((a, b) => a - b);
        const { deltas, output } = pushed(text, cuts, options);
        const reasoning = deltas.filter((d) => d.reasoning_content !== undefined);
        const where = `${JSON.stringify(text)} ${JSON.stringify(options)} cut at ${cuts}`;
        assert.equal(reasoning.length ? reasoning.map((d) => d.reasoning_content).join("") : null, whole.reasoning, where);
        assert.equal(deltas.map((d) => d.content ?? "").join(""), whole.content, where);
        assert.deepEqual(callsOf([...output.toolCalls]), callsOf(whole.toolCalls), where);
        assert.ok(deltas.every((d) => d.content !== "" && d.reasoning_content !== ""), `no empty deltas: ${where}`);
      }
    }
  }
  // what the whole split gives, spelled out for the hostile cases
  const split = (text: string) => splitChatAnswer(text, { reasoning: true, tools: true });
  assert.deepEqual(split("<think>\n never closed  "), { reasoning: "never closed", content: "", toolCalls: [] });
  assert.equal(split("plain <tool_calls>\n{bad json}\n</tool_calls> after").content, "plain <tool_calls>\n{bad json}\n</tool_calls> after");
  const two = split('<tool_calls>\n{"name": "f", "arguments": {}}\n</tool_calls>\n\n<tool_calls>\n{"name": "g", "arguments": [1]}\n</tool_calls>\n  tail \n');
  assert.deepEqual([callsOf(two.toolCalls), two.content], [[{ name: "f", arguments: {} }], '<tool_calls>\n{"name": "g", "arguments": [1]}\n</tool_calls>\n  tail']);
  // a closing tag inside a JSON string ends the block early (as M1's format reads): the cut line is not a call
  assert.deepEqual(split('a <tool_calls>\n{"name": "f", "arguments": {"x": "</tool_calls>"}}\n</tool_calls> b').toolCalls, []);
  assert.deepEqual(callsOf(split('<tool_calls>\n{"name": "f", "arguments": {"x": 1}}\n').toolCalls), [{ name: "f", arguments: { x: 1 } }]);
});
