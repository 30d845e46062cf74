// Runs resume from the SQLite store: a `m1 eval` child killed with SIGKILL midway keeps every finished sample,
// the rerun computes only the rest, and the final results equal an uninterrupted run. In process: cached samples
// never reach the backend, failed ones are retried, and changed settings start a new run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { ROOT, tempDir } from "./helpers.ts";
import { arithmeticSuite } from "../benchmarks/eval/suites/arithmetic.ts";
import { runTask } from "../benchmarks/eval/runner.ts";
import { LocalBackend } from "../benchmarks/eval/backends/local.ts";
import { ResultStore } from "../benchmarks/eval/store.ts";
import type { Backend, CompletionRequest } from "../benchmarks/eval/types.ts";

const EVAL = pathToFileURL(join(ROOT, "kernel", "cli", "eval.ts")).href;

function evalChild(args: string[]) {
  const code = `import { evaluate } from ${JSON.stringify(EVAL)}; process.exitCode = await evaluate(${JSON.stringify(args)});`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exit };
}

/** Every stored sample of the file's single run, by item id. */
function stored(file: string): Map<string, { response: string; score: number; finished_at: string }> {
  const db = new Database(file);
  try {
    const rows = db.prepare("SELECT item_id, response, score, finished_at FROM samples").all() as { item_id: string; response: string; score: number; finished_at: string }[];
    return new Map(rows.map((r) => [r.item_id, r]));
  } finally {
    db.close();
  }
}

function countStored(file: string): number {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT COUNT(*) AS n FROM samples").get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0; // not created yet
  }
}

test("an eval killed with SIGKILL midway resumes without redoing finished samples, and ends as an uninterrupted run", async () => {
  const { dir, cleanup } = tempDir("m1-resume-");
  try {
    const args = ["arithmetic", "--model", "mini-80k", "--digits", "6,7,8", "--n", "4", "--thinking-budget", "80", "--quiet", "--json"];
    const db = join(dir, "killed.sqlite");
    const first = evalChild([...args, "--db", db]);
    const killAfter = 4;
    let exited = false;
    void first.exit.then(() => (exited = true));
    while (!exited && countStored(db) < killAfter) await new Promise((r) => setTimeout(r, 5));
    first.child.kill("SIGKILL");
    const killed = await first.exit;
    assert.equal(killed.signal, "SIGKILL", `the run finished before it could be killed: ${killed.stderr}`);
    const before = stored(db);
    assert.ok(before.size >= killAfter && before.size < 12, `stored ${before.size} of 12 before the kill`);

    const second = await evalChild([...args, "--db", db]).exit;
    assert.equal(second.code, 0, second.stderr);
    const resumed = JSON.parse(second.stdout);
    assert.deepEqual([...resumed.cached].sort(), [...before.keys()].sort(), "every sample stored before the kill is reused");
    assert.equal(resumed.computed.length, 12 - before.size);
    assert.ok(resumed.computed.every((id: string) => !before.has(id)), "no finished sample is computed again");
    const after = stored(db);
    for (const [id, row] of before) assert.equal(after.get(id)!.finished_at, row.finished_at, `${id} was not rewritten`);

    const clean = await evalChild([...args, "--db", join(dir, "clean.sqlite")]).exit;
    const full = JSON.parse(clean.stdout);
    assert.equal(full.computed.length, 12);
    assert.deepEqual(resumed.groups, full.groups);
    assert.equal(resumed.mean_score, full.mean_score);
    const uninterrupted = stored(join(dir, "clean.sqlite"));
    for (const [id, row] of uninterrupted) assert.deepEqual([after.get(id)!.response, after.get(id)!.score], [row.response, row.score], id);
    console.log(`killed after ${before.size}/12 stored samples; the rerun computed ${resumed.computed.length}; mean score ${full.mean_score} (digits 6/7/8: ${full.groups.map((g: { score: number }) => g.score).join("/")})`);
  } finally {
    cleanup();
  }
});

/** Wraps a backend: counts the prompts it is asked for, and fails the listed items' first attempt. */
class Watched implements Backend {
  readonly asked: string[] = [];
  constructor(private readonly inner: Backend, private readonly failOnce = new Set<string>()) {}
  get id() { return this.inner.id; }
  get modelName() { return this.inner.modelName; }
  get concurrency() { return this.inner.concurrency; }
  async complete(request: CompletionRequest) {
    const prompt = String(request.prompt);
    this.asked.push(prompt);
    if (this.failOnce.delete(prompt)) throw new Error("connection reset");
    return this.inner.complete(request);
  }
}

test("in process: cached samples never reach the backend; failures are not stored and are retried; new settings, new run", async () => {
  const { dir, cleanup } = tempDir("m1-store-");
  const store = new ResultStore(join(dir, "runs.sqlite"));
  try {
    const task = () => arithmeticSuite({ digits: [2, 3], perDigits: 3 });
    const local = await LocalBackend.load("mini-40k");
    const flaky = new Watched(local, new Set([String(task().items[4].prompt)]));
    const first = await runTask(task(), flaky, { store, thinkingBudget: 40, progress: null });
    assert.equal(flaky.asked.length, 6);
    assert.deepEqual(first.failures.map((f) => f.itemId), ["3d-1"]);
    assert.equal(first.samples.length, 5);

    const again = new Watched(local);
    const second = await runTask(task(), again, { store, thinkingBudget: 40, progress: null });
    assert.deepEqual(again.asked, [String(task().items[4].prompt)], "only the failed sample is generated again");
    assert.deepEqual(second.computed, ["3d-1"]);
    assert.equal(second.samples.length, 6);
    assert.equal(second.meanScore, 1);

    const other = new Watched(local);
    const third = await runTask(task(), other, { store, thinkingBudget: 80, progress: null });
    assert.equal(other.asked.length, 6, "another thinking budget is another run");
    assert.notEqual(third.run.runId, second.run.runId);
    assert.deepEqual(store.runs().map((r) => [r.samples, r.task]), [[6, "arithmetic-scratchpad"], [6, "arithmetic-scratchpad"]]);

    // an interrupted run (a notebook's interrupt aborts the signal) rejects and keeps what it finished
    const controller = new AbortController();
    const interrupted = new Watched(local);
    const complete = interrupted.complete.bind(interrupted);
    interrupted.complete = async (request) => {
      if (interrupted.asked.length === 2) controller.abort();
      return complete(request);
    };
    await assert.rejects(runTask(task(), interrupted, { store, thinkingBudget: 20, progress: null, signal: controller.signal }), { name: "AbortError" });
    assert.deepEqual(store.runs().map((r) => r.samples), [6, 6, 2]);
  } finally {
    store.close();
    cleanup();
  }
});

test("--db that is not a results database is refused naming the file and left untouched; so is a place where none can be made", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const refused = (file: string, message: RegExp) =>
      assert.throws(() => new ResultStore(file), (e: Error) => e.name === "InputError" && e.message.startsWith(`results database ${file}: `) && message.test(e.message));
    const text = join(dir, "notes.txt");
    writeFileSync(text, "not a database\n");
    refused(text, /is not an SQLite database/);
    const corrupt = join(dir, "corrupt.sqlite");
    writeFileSync(corrupt, Buffer.concat([Buffer.from("SQLite format 3\0", "latin1"), Buffer.alloc(4080, 0x5a)]));
    refused(corrupt, /is damaged \(/);
    const other = join(dir, "shop.sqlite");
    const db = new Database(other);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');");
    db.close();
    const before = readFileSync(other);
    refused(other, /holds tables that are not those of eval results \(users\); it is left as it is/);
    assert.deepEqual(readFileSync(other), before);
    assert.equal(existsSync(`${other}-wal`), false);
    refused(join(text, "results.sqlite"), /cannot create it, .*notes\.txt is not a folder/);
    refused(join(dir, "missing", "results.sqlite"), /cannot create it, the folder .*missing does not exist/);
    const empty = join(dir, "empty.sqlite");
    writeFileSync(empty, "");
    new ResultStore(empty).close(); // an empty file is an empty database: ours to fill
    new ResultStore(empty).close(); // and once ours, opened again
    const r = spawnSync(process.execPath, [join(ROOT, "kernel", "bin", "m1.mjs"), "eval", "arithmetic", "--model", "mini-80k", "--n", "1", "--digits", "1", "--quiet", "--db", corrupt], { cwd: ROOT, encoding: "utf8" });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /results database .*corrupt\.sqlite: is damaged/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  } finally {
    cleanup();
  }
});
