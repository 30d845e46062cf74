// IncrementalDecoder: a growing list of ids decoded one token at a time equals decoding the whole list, for a
// byte-level BPE (characters of 1-4 bytes split across tokens, bytes that never form a character) and a word-level
// tokenizer that joins its tokens with spaces; stop strings are found where they start.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { Tokenizer } from "../engine/tokenizer.ts";
import { IncrementalDecoder } from "../engine/incremental-decoder.ts";
import { Rng } from "../engine/sampling.ts";

const byteLevel = (await Tokenizer.load(join(ROOT, "test", "fixtures", "tool-caller")))!;
const wordLevel = (await Tokenizer.load(join(ROOT, "engine", "checkpoints", "mini-80k")))!;

/** Pushes ids one at a time: the pieces, the text after each push, and the decoder. */
function pushAll(tokenizer: Tokenizer, ids: number[]) {
  const decoder = new IncrementalDecoder(tokenizer);
  const pieces = ids.map((id) => decoder.push(id));
  return { decoder, pieces };
}

test("the pieces add up to the full decode: byte-level characters split across tokens, invalid bytes, a word-level vocabulary", () => {
  const rng = new Rng(4);
  const utf8 = (s: string) => byteLevel.encode(s, { addSpecialTokens: false });
  const cases: [Tokenizer, number[]][] = [
    [byteLevel, utf8("plain ascii, then é, 中文, 🙂 and ∑ split into bytes")],
    [byteLevel, [...utf8("ab"), ...utf8("🙂").slice(0, 2), ...utf8("cd")]], // a character cut short: U+FFFD, as decode shows it
    [byteLevel, Array.from({ length: 40 }, () => 0x80 + Math.floor(rng.next() * 64))], // continuation bytes only: pending past the limit
    [byteLevel, Array.from({ length: 3000 }, () => Math.floor(rng.next() * 256))],
    [wordLevel, Array.from({ length: 500 }, () => Math.floor(rng.next() * wordLevel.vocabSize))],
  ];
  for (const [tokenizer, ids] of cases) {
    const full = tokenizer.decode(ids, { skipUnknown: true });
    const { decoder, pieces } = pushAll(tokenizer, ids);
    const settled = pieces.join("");
    assert.ok(full.startsWith(settled), "the settled text is a prefix of the full decode");
    assert.equal(decoder.text, settled);
    assert.equal(decoder.length, settled.length);
    // the tokens still waiting for the rest of a character are at most the decoder's limit, and end in U+FFFD
    assert.ok(full === settled || full.slice(settled.length).endsWith("\uFFFD"), `${JSON.stringify(full.slice(settled.length))} left over`);
    assert.ok(settled.endsWith(decoder.recent));
    assert.equal(decoder.slice(Math.max(0, settled.length - 10)), settled.slice(Math.max(0, settled.length - 10)));
  }
});

test("each push's piece is the text the full decode gains (held back while inside a character)", () => {
  const ids = byteLevel.encode("x é 中 🙂 y", { addSpecialTokens: false });
  const { pieces } = pushAll(byteLevel, ids);
  let shown = "";
  ids.forEach((_, i) => {
    shown += pieces[i];
    const full = byteLevel.decode(ids.slice(0, i + 1));
    assert.equal(shown, full.replace(/\uFFFD+$/, ""), `after token ${i}`);
  });
  assert.deepEqual(pieces.filter((p) => p === "").length, ids.length - [..."x é 中 🙂 y"].length);
});

test("newStopAt finds a stop string where it starts, across pieces", () => {
  const ids = byteLevel.encode("the answer is 42. STOP here, then STOP again", { addSpecialTokens: false });
  const decoder = new IncrementalDecoder(byteLevel, ["STOP", "nothing"]);
  const found: number[] = [];
  for (const id of ids) {
    decoder.push(id);
    const at = decoder.newStopAt();
    if (at >= 0) {
      found.push(at);
      break;
    }
  }
  assert.deepEqual(found, ["the answer is 42. ".length]);
});

test("generate and m1 serve's batch decode a long output's text in work linear in its length (stop strings watched)", async () => {
  const { Model } = await import("../engine/model.ts");
  const { BatchScheduler } = await import("../kernel/openai/scheduler.ts");
  const model = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
  const tokenizer = model.tokenizer!;
  let decoded = 0; // ids passed to decode, in all
  const decode = tokenizer.decode.bind(tokenizer);
  tokenizer.decode = (ids, opts) => ((decoded += ids.length), decode(ids, opts));
  const n = 400;
  const prompt = model.promptIds("<s> 1 2 + 3 4 = <think>") as number[];
  const options = { maxNewTokens: n, stopTokens: [], temperature: 1, seed: 3 };
  const alone = await model.generate(prompt, { ...options, stopStrings: ["never said"] }).result();
  assert.equal(alone.ids.length, n);
  // one full decode per token would pass n²/2 = 80,000 ids (twice with stop strings); the final text is one more
  assert.ok(decoded < 40 * n, `generate decoded ${decoded} ids for ${n} tokens`);
  decoded = 0;
  const ids: number[] = [];
  for await (const t of new BatchScheduler(model).generate(prompt, options, ["never said"])) ids.push(t.id);
  assert.deepEqual(ids, alone.ids);
  assert.ok(decoded < 40 * n, `the batch decoded ${decoded} ids for ${n} tokens`);
});
