// Per-sample results in an SQLite file (better-sqlite3), one transaction per finished sample, in WAL mode: a run
// killed at any point keeps every sample it finished, and rerunning the same run (same task items, backend and
// generation settings → same run id) skips them.
import Database from "better-sqlite3";
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

  /** `file` is created if missing; ":memory:" keeps nothing after close. */
  constructor(readonly file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL"); // WAL + NORMAL: committed transactions survive a killed process
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
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
