/** The `m1` command line, run as a user runs it (a child process), on the fixtures. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { SafetensorsFile } from "../engine/safetensors.ts";
import { ROOT, TINY, M1_FIXTURE, relErr, tempDir } from "./helpers.ts";

function m1(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), ...args], { encoding: "utf8", cwd: ROOT });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const golden = SafetensorsFile.open(join(TINY, "golden.safetensors"));

test("m1 info --json on the real M1 config reports the computed parameter counts and shard plan", () => {
  const r = m1("info", M1_FIXTURE, "--json");
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.parameters.total, 456_089_655_296);
  assert.equal(s.parameters.activePerToken, 45_944_920_064);
  assert.equal(s.architecture.lightningLayers, 70);
  assert.deepEqual(s.architecture.softmaxLayers, [7, 15, 23, 31, 39, 47, 55, 63, 71, 79]);
  assert.equal(s.bytes.total, 912_210_767_872);
  assert.equal(s.bytes.total, s.shards.totalSize);
  assert.equal(s.shards.tensors, 8243);
  assert.equal(s.shards.files, 413);
  assert.deepEqual(s.shards.missingTensors, []);
  assert.deepEqual(s.shards.unexpectedTensors, []);
  assert.ok(s.shards.perLayer[0].files.length >= 34 && s.shards.perLayer[0].files.length <= 36);
  assert.equal(s.bytes.perLayer.length, 80);
});

test("m1 info prints a readable summary of a checkpoint directory", () => {
  const r = m1("info", TINY);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /7 lightning \+ 1 softmax/);
  assert.match(r.stdout, /dtypes checkpoint/);
});

test("m1 forward writes the logits tensor, equal to the golden logits", () => {
  const { dir, cleanup } = tempDir();
  try {
    const ids = Array.from(golden.read("L37.input_ids").i32);
    const out = join(dir, "logits.safetensors");
    const r = m1("forward", TINY, "--ids", ids.join(","), "--out", out);
    assert.equal(r.code, 0, r.stderr);
    const logits = SafetensorsFile.open(out).read("logits");
    assert.equal(logits.dtype, "F32");
    assert.deepEqual(logits.shape, [37, 512]);
    assert.ok(relErr(logits.f32, golden.read("L37.logits").f32) <= 1e-5);
  } finally {
    cleanup();
  }
});

test("m1 generate --greedy --json prints the golden continuation", () => {
  const prompt = Array.from(golden.read("gen.prompt_ids").i32);
  const expected = Array.from(golden.read("gen.output_ids").i32).slice(prompt.length);
  const r = m1("generate", TINY, "--ids", prompt.join(","), "--max-new", "16", "--greedy", "--json");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).ids, expected);
});

test("m1 generate --prompt on the demo pair: the same answer with or without spaces between the characters", () => {
  const run = (prompt: string) => m1("generate", "engine/checkpoints/mini-80k", "--prompt", prompt, "--max-new", "40", "--greedy", "--json");
  const spaced = run("<s> 4 8 2 1 + 9 3 7 5 = <think>");
  const natural = run("<s>4821+9375=<think>");
  assert.equal(natural.code, 0, natural.stderr);
  assert.deepEqual(JSON.parse(natural.stdout), JSON.parse(spaced.stdout));
  assert.match(JSON.parse(natural.stdout).text, /<\/think> 1 4 1 9 6 <\/s>$/);
});

test("m1 generate takes the registry's mini-80k-rl by name: the RL checkpoint adds 7 digits, which mini-40k never does", () => {
  const prompt = "<s> 4 8 2 1 9 3 7 + 5 1 2 0 3 8 4 = <think>";
  const run = (checkpoint: string) => m1("generate", checkpoint, "--prompt", prompt, "--max-new", "60", "--thinking-budget", "56", "--greedy", "--json");
  const rl = run("mini-80k-rl");
  assert.equal(rl.code, 0, rl.stderr);
  assert.match(JSON.parse(rl.stdout).text, /<\/think> 9 9 4 2 3 2 1 <\/s>$/);
  assert.deepEqual(JSON.parse(rl.stdout), JSON.parse(run("engine/checkpoints/mini-80k-rl").stdout), "the name and the directory are one checkpoint");
  assert.doesNotMatch(JSON.parse(run("mini-40k").stdout).text, /<\/think> 9 9 4 2 3 2 1 <\/s>$/);
});

test("bad input gives a clear error and a non-zero exit", () => {
  const { dir, cleanup } = tempDir();
  try {
    let r = m1("forward", TINY, "--ids", "1,2,9999", "--out", join(dir, "x.safetensors"));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /token id 9999 at index 2/);
    r = m1("generate", TINY, "--ids", "1,x", "--json");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--ids: item 1 \("x"\)/);
    r = m1("info", join(dir, "nowhere"));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nowhere/);
    const broken = join(dir, "broken");
    mkdirSync(broken);
    writeFileSync(join(broken, "config.json"), "{ not json");
    r = m1("info", broken);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /config\.json/);
    r = m1("frobnicate");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  } finally {
    cleanup();
  }
});

test("m1 driver-manifest writes the native spec of a checkpoint with paths relative to the manifest", () => {
  const { dir, cleanup } = tempDir("m1-manifest-");
  try {
    const out = join(dir, "tiny.json");
    const r = m1("driver-manifest", TINY, "--out", out);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(m.format, "m1-driver-manifest");
    assert.equal(m.layers.length, 8);
    assert.deepEqual(m.layers[7].softmax.q.shape, [64, 64]);
    assert.equal(m.layers[0].lightning.slopes.length, 4);
    assert.equal(resolve(dir, m.embed.file), join(TINY, "model.safetensors"));
    const bad = m1("driver-manifest");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /expected one checkpoint directory[\s\S]*usage: m1 driver-manifest/);
  } finally {
    cleanup();
  }
});

test("negative and non-decimal numbers reach the check that names the flag", () => {
  const cases: [string[], number, RegExp][] = [
    [["--ids", "1,2", "--max-new", "-1"], 1, /--max-new: "-1" is not an integer >= 0/],
    [["--ids", "-1,2"], 1, /--ids: item 0 \("-1"\) is not a non-negative integer/],
    [["--ids", "1,2", "--temperature", "-1"], 1, /--temperature: "-1" is not a number >= 0/],
    [["--ids", "1,2", "--top-k", "-5"], 1, /--top-k: "-5" is not an integer >= 1/],
    [["--ids", "1,2", "--thinking-budget", "-3"], 1, /--thinking-budget: "-3" is not an integer >= 0/],
    [["--ids", "0x10"], 1, /--ids: item 0 \("0x10"\) is not a non-negative integer/],
    [["--ids", "1e1"], 1, /--ids: item 0 \("1e1"\) is not a non-negative integer/],
    [["--ids", "1,2", "--max-new", "1.5"], 1, /--max-new: "1.5" is not an integer >= 0/],
    [["--ids", "1,2", "--seed", "0x10"], 1, /--seed: "0x10" is not an integer/],
    [["--ids", "1,2", "--stop-token", "999"], 1, /--stop-token: 999 is outside the vocabulary \[0, 512\)/],
    [["--ids", "1,2", "--bogus"], 2, /unknown option --bogus[\s\S]*usage:/],
    [["--ids", "1,2", "--max-new"], 2, /--max-new needs a value/],
  ];
  for (const [flags, code, message] of cases) {
    const r = m1("generate", TINY, "--json", ...flags);
    assert.equal(r.code, code, `${flags.join(" ")}: exit ${r.code}, ${r.stderr}`);
    assert.match(r.stderr, message, flags.join(" "));
    assert.doesNotMatch(r.stderr, /ambiguous|    at /, flags.join(" "));
  }
  const r = m1("bench", TINY, "--prefill", "-4");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--prefill: "-4" is not an integer >= 1/);
});
