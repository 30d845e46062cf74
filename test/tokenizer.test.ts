import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { InputError, TokenizerError } from "../engine/errors.ts";
import { Tokenizer, renderChatTemplate, type ChatMessage } from "../engine/tokenizer.ts";

const M1_DIR = "test/fixtures/minimax-m1";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "m1-tokenizer-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

const text = (t: string) => [{ type: "text", text: t }];
const conversation: ChatMessage[] = [
  { role: "system", content: text("SYS") },
  { role: "user", content: text("U1") },
  { role: "assistant", content: text("A1") },
  { role: "tool", content: [{ type: "text", name: "f", text: "R" }] },
  { role: "user", content: text("U2") },
];
const tools = [{ name: "f", description: "d", parameters: { type: "object", properties: {} } }];

// The reference rendering of these messages by Jinja2 (tojson as json.dumps), split into lines here for reading;
// the format is described in docs/architecture.md §7.
const EXPECTED_M1_PROMPT = [
  "<begin_of_document><beginning_of_sentence>system ai_setting=assistant\nSYS<end_of_sentence>\n",
  "<beginning_of_sentence>system tool_setting=tools\nYou are provided with these tools:\n<tools>\n" +
    '{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}\n</tools>\n\n' +
    "If you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide tool-name and " +
    "json-object of arguments, following the format below:\n<tool_calls>\n{name: <tool-name-1>, arguments: " +
    "<args-json-object-1>}\n...\n</tool_calls><end_of_sentence>\n",
  "<beginning_of_sentence>user name=user\nU1<end_of_sentence>\n",
  "<beginning_of_sentence>ai name=assistant\nA1<end_of_sentence>\n",
  "<beginning_of_sentence>tool name=tools\ntool name: f\ntool result: R\n\n<end_of_sentence>\n",
  "<beginning_of_sentence>user name=user\nU2<end_of_sentence>\n",
  "<beginning_of_sentence>ai name=assistant\n",
].join("");

test("the real M1 chat template renders exactly as the reference (docs/architecture.md §7)", () => {
  const template = JSON.parse(fs.readFileSync(`${M1_DIR}/tokenizer_config.json`, "utf8")).chat_template;
  assert.equal(renderChatTemplate(template, { messages: conversation, tools, add_generation_prompt: true }), EXPECTED_M1_PROMPT);

  // Plain string contents are normalised to one text part; a tool's name may sit on the message.
  const plain: ChatMessage[] = [
    { role: "system", content: "SYS" }, { role: "user", content: "U1" }, { role: "assistant", content: "A1" },
    { role: "tool", name: "f", content: "R" }, { role: "user", content: "U2" },
  ];
  assert.equal(renderChatTemplate(template, { messages: plain, tools, add_generation_prompt: true }), EXPECTED_M1_PROMPT);

  const bare = renderChatTemplate(template, { messages: [{ role: "user", content: "hi" }] });
  assert.equal(bare, "<begin_of_document><beginning_of_sentence>user name=user\nhi<end_of_sentence>\n");
  assert.throws(() => renderChatTemplate("{% if %}", {}), TokenizerError);
});

test("no tokenizer.json → null", async () => {
  assert.equal(await Tokenizer.load(M1_DIR), null);
});

for (const demo of ["mini-40k", "mini-80k"]) {
  test(`the ${demo} demo tokenizer follows vocab.json`, async () => {
    const vocab: string[] = JSON.parse(fs.readFileSync("engine/checkpoints/vocab.json", "utf8"));
    const tok = await Tokenizer.load(`engine/checkpoints/${demo}`);
    assert.ok(tok);
    const prompt = "4 8 + 9 3 = <think>";
    const ids = tok.encode(prompt);
    assert.deepEqual(ids, prompt.split(" ").map((t) => vocab.indexOf(t)));
    assert.deepEqual(ids, [12, 16, 5, 17, 11, 6, 3]);
    assert.equal(tok.decode(ids), prompt);
    assert.equal(tok.vocabSize, 18);
    assert.deepEqual(tok.eosTokenIds, [2]);
    assert.equal(tok.tokenId("</think>"), 4);
    assert.equal(tok.tokenId("x"), undefined);

    const full = "<s> 1 2 + 3 = <think> 2 3 0 5 0 , 1 0 0 1 0 , </think> 1 5 </s>";
    assert.deepEqual(tok.encode(full), full.split(" ").map((t) => vocab.indexOf(t)));
    assert.equal(tok.decode(tok.encode(full)), full);
    assert.equal(tok.decode(tok.encode(full), { skipSpecialTokens: true }), "1 2 + 3 = 2 3 0 5 0 , 1 0 0 1 0 , 1 5");
    assert.equal(tok.decode([]), "");

    assert.throws(() => tok.encode("4 x 2"), (e: unknown) => e instanceof TokenizerError && /"x"/.test(e.message));
    assert.throws(() => tok.encode("4+2x"), { name: "TokenizerError", message: /: "4\+2x" is not in the vocabulary \(its piece "x" has no token, and there is no unk token\)$/ });

    // one token per character, with or without spaces between them
    assert.deepEqual(tok.encode("<s>4821+9375=<think>"), tok.encode("<s> 4 8 2 1 + 9 3 7 5 = <think>"));
    assert.deepEqual(tok.encode("4821+9375="), [12, 16, 10, 9, 5, 17, 11, 15, 13, 6]);
    assert.deepEqual(tok.encode(" 48 21+9375 =\n"), tok.encode("4 8 2 1 + 9 3 7 5 ="));
    assert.equal(tok.decode(tok.encode("12+3=")), "1 2 + 3 =");
    assert.throws(() => tok.decode([3, 18]), (e: unknown) => e instanceof InputError && /token id 18/.test(e.message));
    assert.throws(() => tok.decode([-1]), InputError);
    assert.throws(() => tok.renderChat([{ role: "user", content: "1 + 2" }]),
      (e: unknown) => e instanceof TokenizerError && e.message.includes("tokenizer_config.json") && /no chat_template/.test(e.message));
  });
}

/** GPT-2's byte → printable-character map used by byte-level BPE. */
function bytesToUnicode(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep(b) ? b : next++));
}

test("a byte-level BPE tokenizer.json goes through @huggingface/tokenizers", async () => {
  const byteChars = bytesToUnicode();
  const merges = [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["Ġwor", "l"], ["Ġworl", "d"]];
  const vocab: Record<string, number> = Object.fromEntries(byteChars.map((c, i) => [c, i]));
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const endId = Object.keys(vocab).length;
  const tokenizerJson = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [{ id: endId, content: "<|end|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, vocab, merges: merges.map((m) => m.join(" ")) },
  };
  const dir = path.join(tmp, "bpe");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({
    eos_token: "<|end|>", clean_up_tokenization_spaces: false,
    chat_template: "{% for m in messages %}{{ m['role'] }}: {{ m['content'][0]['text'] }}{{ eos_token }}{% endfor %}",
  }));
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [endId, 0] }));

  const tok = await Tokenizer.load(dir);
  assert.ok(tok);
  assert.equal(tok.vocabSize, 256 + merges.length + 1);
  assert.deepEqual(tok.eosTokenIds, [endId, 0]);
  assert.deepEqual(tok.encode("hello world"), [vocab.hello, vocab["Ġworld"]]);
  assert.deepEqual(tok.encode("hello<|end|>"), [vocab.hello, endId]);
  const accented = "héllo, wörld!\n";
  const ids = tok.encode(accented);
  assert.deepEqual(ids.slice(0, 3), [vocab.h, 0xc3, 0xa9], "é is split into its two UTF-8 bytes");
  assert.equal(tok.decode(ids), accented);
  assert.equal(tok.decode([vocab.hello, endId], { skipSpecialTokens: true }), "hello");
  assert.equal(tok.renderChat([{ role: "user", content: "hi" }, { role: "assistant", content: text("yo") }]), "user: hi<|end|>assistant: yo<|end|>");

  const broken = path.join(tmp, "broken");
  fs.mkdirSync(broken);
  fs.writeFileSync(path.join(broken, "tokenizer.json"), "{not json");
  await assert.rejects(Tokenizer.load(broken), (e: unknown) => e instanceof TokenizerError && e.message.includes(path.join(broken, "tokenizer.json")));
});
