// The serving load generator (benchmarks/serving/load.ts) end to end on a few short requests: against `m1 serve`
// (a child process, over HTTP) and through the scheduler in process (--direct), it reports a row per level with
// the batch the server ran, and every request gets the same text at every level. Its speed figures are not tested.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";

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

for (const [what, flags] of [["m1 serve over HTTP", []], ["--direct", ["--direct"]]] as const) {
  test(`load.ts against ${what}: a row per level, the batch it ran, the same texts at every level`, async () => {
    const out = await run(...flags);
    assert.match(out, /^6 completion requests of up to 8 tokens .* 2 rounds visiting the levels in turn$/m);
    assert.match(out, /^every request got the same text at every level and in every round$/m);
    const table = rows(out);
    assert.deepEqual([...table.keys()], [1, 3]);
    const [one, three] = [table.get(1)!, table.get(3)!];
    assert.equal(one[3], "1.00");
    assert.deepEqual([one[5], one[6]], ["1.0", "1"], "one at a time: batches of one");
    assert.ok(Number(three[5]) > 1 && Number(three[5]) <= 3, `mean batch at 3 in flight: ${three[5]}`);
    assert.equal(three[6], "3-4", "the largest batch's bucket");
    assert.ok(Number(three[8]) > 0, "the server's CPU time per token");
    if (flags.length) assert.equal(three[9], "(in the server's)", "one process: no client CPU of its own");
    else assert.ok(Number(three[9]) > 0, "the client's CPU time per token");
  });
}
