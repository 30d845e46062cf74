// The serving load generator (benchmarks/serving/load.ts) end to end on a few short requests: against `m1 serve`
// (a child process, over HTTP) and through the scheduler in process (--direct), it reports a row per level with
// the batch the server ran, and every request gets the same text at every level. Its speed figures are not tested;
// nor are those of pick.ts and long-output.ts, which are run for their lines and their flags' checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { copyFileSync, symlinkSync } from "node:fs";
import { ROOT, tempDir } from "./helpers.ts";

const run = async (...flags: string[]) => {
  const args = ["--import", "tsx", join(ROOT, "benchmarks", "serving", "load.ts"), "--requests", "6", "--max-tokens", "8", "--levels", "1,3", "--rounds", "2", ...flags];
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: ROOT, timeout: 120_000 });
  return stdout;
};

/** The table's rows: level → its cells. */
const rows = (table: string) => new Map(table.split("\n").filter((l) => /^\| \d/.test(l)).map((l) => {
  const cells = l.split("|").slice(1, -1).map((c) => c.trim());
  return [Number(cells[0]), cells];
}));

// one lane: the 3 requests in flight share one batch; two lanes: a new request joins the lane with fewer, so 2 at most
for (const [what, flags, lanes] of [["m1 serve over HTTP", [], 1], ["--direct", ["--direct"], 2]] as const) {
  test(`load.ts against ${what}, ${lanes} lane${lanes > 1 ? "s" : ""}: a row per level, the batch it ran, the same texts at every level`, async () => {
    const out = await run(...flags, "--lanes", String(lanes));
    assert.match(out, new RegExp(`^6 completion requests of up to 8 tokens .* \\(${lanes} lanes?[:)].* 2 rounds visiting the levels in turn$`, "m"));
    assert.match(out, /^every request got the same text at every level and in every round$/m);
    const table = rows(out);
    assert.deepEqual([...table.keys()], [1, 3]);
    const [one, three] = [table.get(1)!, table.get(3)!];
    assert.equal(one[3], "1.00");
    assert.deepEqual([one[5], one[6]], ["1.0", "1"], "one at a time: batches of one");
    const most = lanes === 1 ? 3 : 2;
    assert.ok(Number(three[5]) >= (lanes === 1 ? 1.1 : 1) && Number(three[5]) <= most, `mean batch at 3 in flight: ${three[5]}`);
    assert.equal(three[6], lanes === 1 ? "3-4" : "2", "the largest batch's bucket");
    assert.ok(Number(three[8]) > 0, "the server's CPU time per token");
    if (flags.length) assert.equal(three[9], "(in the server's)", "one process: no client CPU of its own");
    else assert.ok(Number(three[9]) > 0, "the client's CPU time per token");
  });
}

test("load.ts on a checkpoint without a tokenizer: token-id prompts, the same tokens at every level", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const mini = join(ROOT, "engine", "checkpoints", "mini-80k");
    copyFileSync(join(mini, "config.json"), join(dir, "config.json"));
    symlinkSync(join(mini, "model.safetensors"), join(dir, "model.safetensors"));
    for (const flags of [[], ["--direct"]]) {
      const out = await run("--model", dir, ...flags);
      assert.match(out, /^6 completion requests of up to 8 tokens \(16 seeded random token ids, /m);
      assert.match(out, /^every request got the same tokens at every level and in every round$/m);
      assert.deepEqual([...rows(out).keys()], [1, 3]);
    }
  } finally {
    cleanup();
  }
});

test("pick.ts and long-output.ts run, print their lines and name a bad flag", async () => {
  const script = (name: string, ...flags: string[]) =>
    promisify(execFile)(process.execPath, ["--import", "tsx", join(ROOT, "benchmarks", "serving", name), ...flags], { cwd: ROOT, timeout: 120_000 });
  const pick = (await script("pick.ts", "--vocab", "300", "--rows", "3", "--steps", "2")).stdout;
  assert.match(pick, /^flat, 300 ids, 3 rows: \d+ µs per step, \d+ µs of CPU per row\npeaked, 300 ids, 3 rows: /);
  const long = (await script("long-output.ts", "--tokens", "50", "--window", "20", "--stop", "zzz")).stdout;
  assert.deepEqual(long.split("\n").filter(Boolean).map((l) => l.replace(/\d+ tokens\/s|[\d.]+ s,/g, "#")), [
    "tokens 1-20: #", "tokens 21-40: #", "tokens 41-50: #", '50 tokens in # stop string "zzz" watched',
  ]);
  await assert.rejects(script("long-output.ts", "--tokens", "0"), /--tokens must be an integer >= 1, got 0/);
  await assert.rejects(script("pick.ts", "--rows", "x"), /--rows must be an integer >= 1, got NaN/);
});
