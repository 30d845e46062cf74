// The native driver (native/driver: the C++ core with a command line, no Node.js) against the engine, on manifests
// written by `m1 driver-manifest`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Model } from "../engine/model.ts";
import { Checkpoint } from "../engine/checkpoint.ts";
import { driverManifest, randomManifest } from "../engine/manifest.ts";
import { loadConfig } from "../engine/config.ts";
import { EMBEDDED_DIR } from "../engine/registry.ts";
import { ROOT, TINY, M1_FIXTURE, relErr, tempDir } from "./helpers.ts";

const DRIVER = join(ROOT, "native", "driver", "build", "m1-driver");
const build = spawnSync("make", ["-C", join(ROOT, "native", "driver"), "-j2"], { encoding: "utf8" });
assert.equal(build.status, 0, `make -C native/driver failed:\n${build.stdout}\n${build.stderr}`);

const { dir, cleanup } = tempDir("m1-driver-");
process.on("exit", cleanup);

function manifest(checkpoint: string, name: string, edit?: (m: any) => void): string {
  const ckpt = Checkpoint.open(checkpoint);
  const m = driverManifest(ckpt, dir);
  ckpt.close();
  edit?.(m);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(m));
  return file;
}

function driver(...args: string[]): { status: number | null; json: any; stderr: string } {
  const r = spawnSync(DRIVER, args, { encoding: "utf8", env: { ...process.env, M1_THREADS: "2" } });
  return { status: r.status, json: r.status === 0 ? JSON.parse(r.stdout) : null, stderr: r.stderr };
}

const prompt = [491, 356, 260, 74, 262, 69, 118, 361, 36, 242, 508, 131, 55, 311, 366, 33, 496, 451, 402, 430, 338];
const tinyManifest = manifest(TINY, "tiny");

for (const [label, checkpoint, ids] of [
  ["tiny-m1 (f32), a 21-token prompt", TINY, prompt],
  ["tiny-m1 (f32), 5 tokens", TINY, prompt.slice(0, 5)],
  ["mini-80k (bf16)", join(EMBEDDED_DIR, "mini-80k"), [1, 12, 16, 5, 17, 11, 6, 3]],
] as const) {
  test(`driver forward equals the engine bit for bit: ${label}`, async () => {
    const file = checkpoint === TINY ? tinyManifest : manifest(checkpoint, "mini");
    const r = driver(file, "forward", ids.join(","), "--logits", "all");
    assert.equal(r.status, 0, r.stderr);
    const model = await Model.load(checkpoint);
    const want = (await model.forward(ids)).logits.data;
    assert.equal(r.json.rows, ids.length);
    assert.deepEqual(Float32Array.from(r.json.logits as number[]), want);
  });
}

test("driver: a prompt longer than a prefill chunk (2048 tokens) equals the engine's one long prefill", async () => {
  const ids = Array.from({ length: 2100 }, (_, i) => (i * 37) % 500 + 2);
  const r = driver(tinyManifest, "forward", ids.join(","), "--logits", "last");
  assert.equal(r.status, 0, r.stderr);
  const want = (await (await Model.load(TINY)).forward(ids, { logits: "last" })).logits.f32;
  assert.ok(relErr(Float32Array.from(r.json.logits as number[]), want) < 1e-5);
});

test("driver generate equals the engine's greedy generation", async () => {
  const model = await Model.load(TINY);
  const eos = model.config.eosTokenId!;
  const ids: number[] = [];
  for await (const t of model.generate(prompt.slice(0, 7), { greedy: true, maxNewTokens: 12, stopTokens: [eos] })) ids.push(t.id);
  const r = driver(tinyManifest, "generate", prompt.slice(0, 7).join(","), "--steps", "12");
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.json.ids, ids);
});

test("driver bench reports throughput; random weights from a seed are reproducible", () => {
  const r = driver(tinyManifest, "bench", "--prefill", "40", "--decode", "4", "--tries", "1");
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.json.prefill_tok_s > 0 && r.json.decode_tok_s > 0);
  assert.equal(r.json.threads, 2);
  const random = manifest(TINY, "random", (m) => {
    let seed = 1;
    const randomize = (v: any): void => {
      if (v && typeof v === "object" && "file" in v && "offset" in v) {
        delete v.file;
        delete v.offset;
        v.random = { seed: seed++, scale: 0.1 };
      } else if (v && typeof v === "object") Object.values(v).forEach(randomize);
    };
    randomize(m);
  });
  const a = driver(random, "forward", "1,2,3");
  const b = driver(random, "forward", "1,2,3");
  assert.equal(a.status, 0, a.stderr);
  assert.ok((a.json.logits as number[]).every(Number.isFinite));
  assert.deepEqual(a.json.logits, b.json.logits);
  assert.notDeepEqual(a.json.logits, driver(tinyManifest, "forward", "1,2,3").json.logits);
});

test("driver errors name the manifest field, the file and the argument", () => {
  const shape = manifest(TINY, "bad-shape", (m) => (m.layers[0].experts[3].w2.shape = [64, 95]));
  let r = driver(shape, "forward", "1,2");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad-shape\.json: layers\[0\]\.experts\[3\]\.w2\.shape is \[64,95\], expected \[64,96\]/);
  const past = manifest(TINY, "bad-offset", (m) => (m.lmHead.offset = 10 ** 9));
  r = driver(past, "forward", "1");
  assert.match(r.stderr, /bad-offset\.json: lmHead\.offset \+ 131072 bytes runs past the end of .*model\.safetensors/);
  const block = manifest(TINY, "bad-block", (m) => (m.layers[1].lightning.blockSize = 5000.5));
  assert.match(driver(block, "forward", "1").stderr, /bad-block\.json: layers\[1\]\.lightning\.blockSize must be an integer in \[1, 4096\], got 5000\.5/);
  const missing = manifest(TINY, "no-router", (m) => delete m.layers[2].router);
  assert.match(driver(missing, "forward", "1").stderr, /no-router\.json: layers\[2\]\.router is missing/);
  r = driver(tinyManifest, "forward", "1,512");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /IDS: token id 512 is outside the vocabulary \[0, 512\)/);
  r = driver(tinyManifest, "sample", "1");
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "sample"[\s\S]*usage: m1-driver/);
  writeFileSync(join(dir, "broken.json"), readFileSync(tinyManifest, "utf8").slice(0, 100));
  assert.match(driver(join(dir, "broken.json"), "forward", "1").stderr, /broken\.json: invalid JSON at byte 100/);
});

test("a random manifest has the config's full-width shapes (the real M1 layer) and runs in the driver", () => {
  const m = randomManifest(loadConfig(join(M1_FIXTURE, "config.json")), [0, 7], { vocab: 1024, seed: 0, dtype: "BF16" }) as any;
  assert.deepEqual(m.layers.map((l: any) => (l.lightning ? "lightning" : "softmax")), ["lightning", "softmax"]);
  assert.deepEqual(m.layers[0].lightning.qkv.shape, [3 * 64 * 128, 6144]);
  assert.deepEqual(m.layers[1].softmax.k.shape, [8 * 128, 6144]);
  assert.equal(m.layers[0].experts.length, 32);
  assert.deepEqual(m.layers[0].experts[31].w2.shape, [6144, 9216]);
  assert.equal(m.layers[0].experts[31].w2.dtype, "BF16");
  assert.throws(() => randomManifest(loadConfig(join(M1_FIXTURE, "config.json")), [80], { vocab: 8, seed: 0, dtype: "F32" }), /layer 80 is not in \[0, 80\)/);
  const file = join(dir, "random-tiny.json");
  writeFileSync(file, JSON.stringify(randomManifest(loadConfig(join(TINY, "config.json")), [0, 7], { vocab: 64, seed: 3, dtype: "BF16" })));
  const r = driver(file, "generate", "1,2,3", "--steps", "4");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.json.ids.length, 4);
});
