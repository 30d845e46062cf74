// Math answer equivalence grader: extracts the answer (\boxed{…} or the last number) from the response and from
// the target, then compares them in a worker thread that is terminated when a comparison exceeds the timeout
// (symbolic simplification can take very long on adversarial expressions).
import { Worker } from "node:worker_threads";
import type { Grader, EvalItem, Grade } from "../types.ts";
import type { Equivalence } from "./math-compare.ts";
import { extractMathAnswer } from "./math-normalize.ts";

export interface MathGraderOptions {
  /** longest time one comparison may take (default 5000 ms); a timeout scores 0 */
  timeoutMs?: number;
  /** the target is the answer itself (as datasets give it), not a solution to extract it from */
  targetIsAnswer?: boolean;
}

/** Runs comparisons one at a time in a worker thread, replacing the worker after a timeout. */
export class MathChecker {
  private worker: Promise<Worker> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 0;

  /** The timeout counts from when the worker is ready (its first start loads mathjs). */
  check(answer: string, target: string, timeoutMs: number): Promise<Equivalence | "timeout"> {
    const run = this.queue.then(() => this.run(answer, target, timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    const worker = await this.worker?.catch(() => null);
    this.worker = null;
    await worker?.terminate();
  }

  private async run(answer: string, target: string, timeoutMs: number): Promise<Equivalence | "timeout"> {
    const worker = await (this.worker ??= startWorker());
    const id = this.nextId++;
    worker.ref();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.unref();
      };
      const onMessage = (msg: { id: number; result: Equivalence }) => {
        if (msg.id !== id) return;
        done();
        resolve(msg.result);
      };
      const onError = (err: Error) => {
        done();
        this.worker = null;
        reject(err);
      };
      const timer = setTimeout(() => {
        done();
        this.worker = null;
        void worker.terminate();
        resolve("timeout");
      }, timeoutMs);
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.postMessage({ id, answer, target });
    });
  }
}

/**
 * The worker's module is TypeScript, so its entry loads it through tsx's API (worker threads do not get the
 * --import hooks); it posts "ready" once mathjs is loaded.
 */
function startWorker(): Promise<Worker> {
  const api = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const entry = JSON.stringify(new URL("./math-worker.ts", import.meta.url).href);
  const worker = new Worker(`import(${api}).then((tsx) => tsx.tsImport(${entry}, ${entry}));`, { eval: true });
  return new Promise((resolve, reject) => {
    worker.once("message", () => {
      worker.off("error", reject);
      worker.unref();
      resolve(worker);
    });
    worker.once("error", reject);
  });
}

export function mathGrader(options: MathGraderOptions = {}): Grader {
  const timeoutMs = options.timeoutMs ?? 5000;
  const checker = new MathChecker();
  return {
    name: "math_equivalence",
    async grade(answer: string, item: EvalItem): Promise<Grade> {
      const extracted = extractMathAnswer(answer);
      if (extracted === null) return { score: 0, extracted: null, detail: "no \\boxed{} answer and no number" };
      const target = options.targetIsAnswer ? item.target : extractMathAnswer(item.target) ?? item.target;
      const verdict = await checker.check(extracted, target, timeoutMs);
      if (verdict === "timeout") return { score: 0, extracted, detail: `comparison timed out after ${timeoutMs} ms` };
      return { score: verdict.equivalent ? 1 : 0, extracted, detail: verdict.how };
    },
    close: () => checker.close(),
  };
}
