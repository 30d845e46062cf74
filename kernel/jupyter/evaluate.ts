/**
 * Runs transformed cells in this process's main context through the in-process inspector in V8's REPL mode
 * (what Chrome's console and Deno's kernel use): top-level `let`/`const`/`class` live in one scope shared by all
 * cells and may be declared again, and top-level `await` works. Running in-process keeps the engine's objects,
 * the event loop and AbortSignals shared with the kernel.
 */
import { Session } from "node:inspector";
import { SourceMap } from "node:module";
import type { TransformedCell } from "./transform.ts";

/** The global through which transformed cells reach the kernel (imports, results). */
export const RUNTIME = "__m1kernel";

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface RemoteObject {
  type: string;
  value?: unknown;
  unserializableValue?: string;
  objectId?: string;
}

/** What cell code reaches through the `__m1kernel` global (see transform.ts). */
export interface CellRuntime {
  import(specifier: string, options?: ImportCallOptions): Promise<unknown>;
  meta: { url: string; dirname: string; filename: string };
  last?: unknown;
  thrown?: unknown;
}

export class Evaluator {
  private readonly session = new Session();
  private readonly maps = new Map<string, SourceMap>();

  constructor(private readonly runtime: CellRuntime) {
    Object.defineProperty(globalThis, RUNTIME, { value: runtime, configurable: true });
    this.session.connect();
  }

  private post<T>(method: string, params: object): Promise<T> {
    return new Promise((resolve, reject) => this.session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))));
  }

  /** Runs a cell named `name` (it appears under that name in stack traces); resolves when its promise settles. */
  async run(cell: TransformedCell, name: string): Promise<Outcome> {
    this.maps.set(name, new SourceMap(JSON.parse(cell.map)));
    this.runtime.last = undefined;
    const group = `cell:${name}`;
    try {
      const res = await this.post<{ exceptionDetails?: { exception?: RemoteObject; text: string } }>("Runtime.evaluate", {
        expression: `${cell.js}\n//# sourceURL=${name}`,
        replMode: true,
        awaitPromise: true,
        objectGroup: group,
      });
      if (!res.exceptionDetails) return { ok: true, value: this.runtime.last };
      const thrown = res.exceptionDetails.exception;
      return { ok: false, error: thrown ? await this.materialize(thrown, group) : new Error(res.exceptionDetails.text) };
    } finally {
      await this.post("Runtime.releaseObjectGroup", { objectGroup: group });
    }
  }

  /** The thrown value itself, not the inspector's description of it. */
  private async materialize(remote: RemoteObject, group: string): Promise<unknown> {
    if (!remote.objectId) {
      if (remote.type === "undefined") return undefined;
      if (remote.unserializableValue === undefined) return remote.value;
      const u = remote.unserializableValue;
      return u.endsWith("n") ? BigInt(u.slice(0, -1)) : Number(u);
    }
    await this.post("Runtime.callFunctionOn", {
      objectId: remote.objectId,
      functionDeclaration: `function () { "use strict"; globalThis.${RUNTIME}.thrown = this; }`,
      objectGroup: group,
    });
    const value = this.runtime.thrown;
    this.runtime.thrown = undefined;
    return value;
  }

  /**
   * The stack of an error with cell frames at their cell positions (`In[3]:2:5`), cut where the kernel's own
   * frames start (`isKernel`), without Node's internal frames.
   */
  traceback(error: Error, isKernel: (frame: string) => boolean): string[] {
    const lines = String(error.stack ?? `${error.name}: ${error.message}`).split("\n");
    const end = lines.findIndex((l) => /^\s+at /.test(l) && isKernel(l));
    return lines
      .slice(0, end < 0 ? lines.length : end)
      .filter((l) => !/^\s+at .*\(?node:internal\//.test(l))
      .map((l) =>
        l.replace(/(In\[[^\]]*\]):(\d+):(\d+)/g, (all, name: string, line: string, col: string) => {
          const entry = this.maps.get(name)?.findEntry(Number(line) - 1, Number(col) - 1) as { originalLine?: number; originalColumn?: number } | undefined;
          return entry?.originalLine === undefined ? all : `${name}:${entry.originalLine + 1}:${entry.originalColumn! + 1}`;
        }),
      );
  }
}
