// Per-sample results in an SQLite file (better-sqlite3), one transaction per finished sample, in WAL mode: a run
// killed at any point keeps every sample it finished, and rerunning the same run (same task items, backend and
// generation settings → same run id) skips them.
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { InputError } from "../../engine/errors.ts";
import type { JsonValue } from "./types.ts";

export interface StoredSample {
  itemId: string;
  index: number;
  group: string | null;
  /** the prompt as sent: text, or the chat as JSON */
  prompt: string;
  response: string;
  thinking: string;
  answer: string;
  target: string;
  score: number;
  extracted: string | null;
  detail: string | null;
  finishReason: string;
  promptTokens: number | null;
  completionTokens: number | null;
  latencyMs: number;
  finishedAt: string;
}

export interface RunInfo { runId: string; task: string; backend: string; settings: JsonValue; createdAt: string; samples: number; meanScore: number | null }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, task TEXT NOT NULL, backend TEXT NOT NULL, settings TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
  run_id TEXT NOT NULL REFERENCES runs(run_id), item_id TEXT NOT NULL, item_index INTEGER NOT NULL, grp TEXT,
  prompt TEXT NOT NULL, response TEXT NOT NULL, thinking TEXT NOT NULL, answer TEXT NOT NULL, target TEXT NOT NULL,
  score REAL NOT NULL, extracted TEXT, detail TEXT, finish_reason TEXT NOT NULL,
  prompt_tokens INTEGER, completion_tokens INTEGER, latency_ms REAL NOT NULL, finished_at TEXT NOT NULL,
  PRIMARY KEY (run_id, item_id)
);`;

export class ResultStore {
  private readonly db: Database.Database;

  /** `file` is created if missing; ":memory:" keeps nothing after close. An existing file is opened only if it is a
   *  results database (or an empty one): anything else is refused, naming the file, and left as it was. */
  constructor(readonly file: string) {
    if (file !== ":memory:") checkResultsFile(file);
    try {
      this.db = new Database(file);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL"); // WAL + NORMAL: committed transactions survive a killed process
      this.db.pragma("busy_timeout = 5000");
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new InputError(`results database ${file}: cannot be opened for writing (${(e as Error).message})`, { cause: e });
    }
  }

  beginRun(runId: string, task: string, backend: string, settings: JsonValue): void {
    this.db
      .prepare("INSERT OR IGNORE INTO runs (run_id, task, backend, settings, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(runId, task, backend, JSON.stringify(settings), new Date().toISOString());
  }

  /** The samples already finished in a run, by item id. */
  finished(runId: string): Map<string, StoredSample> {
    const rows = this.db.prepare("SELECT * FROM samples WHERE run_id = ? ORDER BY item_index").all(runId) as Record<string, unknown>[];
    return new Map(rows.map((r) => [r.item_id as string, fromRow(r)]));
  }

  save(runId: string, s: StoredSample): void {
    this.db
      .prepare(`INSERT OR REPLACE INTO samples VALUES (@runId, @itemId, @index, @group, @prompt, @response, @thinking, @answer, @target,
        @score, @extracted, @detail, @finishReason, @promptTokens, @completionTokens, @latencyMs, @finishedAt)`)
      .run({ runId, ...s });
  }

  runs(): RunInfo[] {
    const rows = this.db
      .prepare(`SELECT r.*, COUNT(s.item_id) AS n, AVG(s.score) AS mean FROM runs r LEFT JOIN samples s USING (run_id)
        GROUP BY r.run_id ORDER BY r.created_at`)
      .all() as Record<string, unknown>[];
    return rows.map((r) => ({
      runId: r.run_id as string,
      task: r.task as string,
      backend: r.backend as string,
      settings: JSON.parse(r.settings as string),
      createdAt: r.created_at as string,
      samples: r.n as number,
      meanScore: r.mean as number | null,
    }));
  }

  close(): void {
    this.db.close();
  }
}

/** Each table of SCHEMA with its columns, as SQLite reports them. */
function tablesOf(db: Database.Database): Map<string, string> {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
  return new Map(tables.map(({ name }) => [name, (db.pragma(`table_info(${JSON.stringify(name)})`) as { name: string; type: string }[]).map((c) => `${c.name} ${c.type}`).join(", ")]));
}

let ourTables: Map<string, string> | undefined;
function resultsTables(): Map<string, string> {
  if (!ourTables) {
    const db = new Database(":memory:");
    db.exec(SCHEMA);
    ourTables = tablesOf(db);
    db.close();
  }
  return ourTables;
}

/** Refuses (without writing to it) a file that is not a results database or an empty one, or a place where no
 *  file can be created. */
function checkResultsFile(file: string): void {
  const where = `results database ${file}`;
  if (!fs.existsSync(file)) {
    const dir = path.dirname(path.resolve(file));
    if (!fs.existsSync(dir)) throw new InputError(`${where}: cannot create it, the folder ${dir} does not exist`);
    if (!fs.statSync(dir).isDirectory()) throw new InputError(`${where}: cannot create it, ${dir} is not a folder`);
    return;
  }
  if (!fs.statSync(file).isFile()) throw new InputError(`${where}: is not a file`);
  if (fs.statSync(file).size === 0) return;
  const head = Buffer.alloc(16);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, head, 0, 16, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head.toString("latin1") !== "SQLite format 3\0") throw new InputError(`${where}: is not an SQLite database (a results database is one); give another file`);
  let found: Map<string, string>;
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      found = tablesOf(db);
    } finally {
      db.close();
    }
  } catch (e) {
    throw new InputError(`${where}: is damaged (${(e as Error).message}); give another file`, { cause: e });
  }
  const ours = resultsTables();
  const foreign = [...found].filter(([name, columns]) => ours.get(name) !== columns).map(([name]) => name);
  if (foreign.length) {
    throw new InputError(`${where}: holds tables that are not those of eval results (${foreign.join(", ")}); it is left as it is: give another file`);
  }
}

function fromRow(r: Record<string, unknown>): StoredSample {
  return {
    itemId: r.item_id as string,
    index: r.item_index as number,
    group: r.grp as string | null,
    prompt: r.prompt as string,
    response: r.response as string,
    thinking: r.thinking as string,
    answer: r.answer as string,
    target: r.target as string,
    score: r.score as number,
    extracted: r.extracted as string | null,
    detail: r.detail as string | null,
    finishReason: r.finish_reason as string,
    promptTokens: r.prompt_tokens as number | null,
    completionTokens: r.completion_tokens as number | null,
    latencyMs: r.latency_ms as number,
    finishedAt: r.finished_at as string,
  };
}
