/**
 * The m1 kernel: a handler for each request of the messaging spec. Cells run in this process (evaluate.ts), so
 * engine calls share the event loop with the kernel and an interrupt_request can abort them mid-generation.
 * The TypeScript tooling loads on first use, which keeps the kernel's start fast.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { existsSync, readFileSync } from "node:fs";
import { inspect } from "node:util";
import vm from "node:vm";
import * as api from "./api.ts";
import { CommManager } from "./comms.ts";
import { bundleOf, PlotlyOnce, type DisplayData } from "./display.ts";
import { Evaluator, type CellRuntime, type Outcome } from "./evaluate.ts";
import { History, type HistoryRequest } from "./history.ts";
import { KernelServer, type Channel, type Handler } from "./server.ts";
import { captureStreams, type Streams } from "./streams.ts";
import { PROTOCOL_VERSION, type Message } from "./wire.ts";
import type { ConnectionInfo } from "./connection.ts";
import type { CellCompiler, CellDiagnostic } from "./compiler.ts";
import type { transformCell } from "./transform.ts";

const KERNEL_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(dirname(KERNEL_DIR));
const require = createRequire(import.meta.url);

/** The libraries the workbench is built on and documents. Cells import them from any directory without installing
 *  anything, and get the workbench's own copy (so an Arrow table made in a cell is one the display recognises). */
const LIBRARIES = ["apache-arrow", "mathjs", "plotly.js-dist-min", "tslab"];

/** Libraries that run only in a browser: importing one in a cell says what to use instead. */
const BROWSER_ONLY: Record<string, string> = {
  "plotly.js-dist-min":
    'plotly.js runs in the browser, not in the kernel: make a figure with `new Figure(data, layout, title)` from "m1-workbench" ' +
    "(plotly's own data and layout objects); it shows as a plotly figure, with an offline HTML rendering, and the kernel sends plotly.js to the page",
};

/** Modules cells can import from any directory → the file that runs (ESM entry where a package has one). */
const ALIASES: Record<string, string> = {
  "m1-workbench": join(ROOT, "engine", "index.ts"),
  "m1-workbench/kernel": join(KERNEL_DIR, "api.ts"),
  "m1-workbench/benchmarks": join(ROOT, "benchmarks", "index.ts"),
  "m1-workbench/openai": join(ROOT, "kernel", "openai", "server.ts"),
  ...Object.fromEntries(LIBRARIES.map((pkg) => [pkg, fileURLToPath(import.meta.resolve(pkg))])),
};

/** The same modules → the file that types them: a package's declared types, else its code (typed as any). */
function typesOf(specifier: string): string {
  if (!LIBRARIES.includes(specifier)) return ALIASES[specifier];
  let dir = dirname(ALIASES[specifier]); // up from the entry to the package's own package.json (not all packages export it)
  while (!isManifestOf(join(dir, "package.json"), specifier)) dir = dirname(dir);
  const { types, typings } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { types?: string; typings?: string };
  return types ?? typings ? join(dir, (types ?? typings)!) : ALIASES[specifier];
}

function isManifestOf(file: string, pkg: string): boolean {
  return existsSync(file) && (JSON.parse(readFileSync(file, "utf8")) as { name?: string }).name === pkg;
}

const version = (pkg: string) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")).version as string;

/** A cell that does not type-check; its traceback shows each error under its line. */
class CompileError extends Error {
  override name = "TSError";
  readonly traceback: string[];

  constructor(cell: string, code: string, diagnostics: CellDiagnostic[]) {
    const heads = diagnostics.map((d) => `${cell}:${d.line}:${d.column} - error TS${d.code}: ${d.message}`);
    super(heads.join("\n"));
    const lines = code.split("\n");
    this.traceback = diagnostics.flatMap((d, i) => [heads[i], `    ${lines[d.line - 1]}`, `    ${" ".repeat(d.column - 1)}^`]);
  }
}

const codePointsToUtf16 = (s: string, cp: number) => {
  let i = 0;
  for (let n = 0; n < cp && i < s.length; n++) i += s.codePointAt(i)! > 0xffff ? 2 : 1;
  return i;
};
const utf16ToCodePoints = (s: string, i: number) => [...s.slice(0, i)].length;

/** A promise that a cell left to reject with nothing handling it (Node would end the process for it). */
class UnhandledRejection extends Error {
  override name = "UnhandledPromiseRejection";

  constructor(readonly reason: unknown) {
    super(`a promise was rejected and nothing handled it: ${reason instanceof Error ? `${reason.name}: ${reason.message}` : inspect(reason)}`);
  }
}

interface Running {
  msg: Message;
  controller: AbortController;
  allowStdin: boolean;
  /** settles with the first promise that the cell leaves to reject unhandled */
  floating: Promise<Outcome>;
  reportFloating(reason: unknown): void;
}

/** Why an execute_request cannot run (messaging spec: code is a string, user_expressions maps names to strings). */
function invalidExecute(content: Record<string, unknown>): string | null {
  if (typeof content.code !== "string") return `execute_request: content.code must be a string, got ${content.code === null ? "null" : typeof content.code}`;
  const ue = content.user_expressions;
  if (ue !== undefined && (typeof ue !== "object" || ue === null || Array.isArray(ue))) {
    return `execute_request: content.user_expressions must be an object of name: expression, got ${ue === null ? "null" : Array.isArray(ue) ? "an array" : typeof ue}`;
  }
  const bad = Object.entries((ue ?? {}) as object).find(([, e]) => typeof e !== "string");
  return bad ? `execute_request: user_expressions["${bad[0]}"] must be a string, got ${typeof bad[1]}` : null;
}

export class Kernel {
  private readonly server: KernelServer;
  private readonly streams: Streams;
  private readonly comms: CommManager;
  private readonly history = new History();
  private readonly plotly = new PlotlyOnce();
  private count = 0;
  private silentRuns = 0;
  /** The request that output (streams, displays) belongs to: the last execute request. */
  private parent?: Message;
  private current?: Running;
  private pending?: { name: "stdout" | "stderr"; text: string };
  private timer?: NodeJS.Timeout;
  private evaluator?: Evaluator;
  private tools?: Promise<{ compiler: CellCompiler; transform: typeof transformCell }>;

  constructor(info: ConnectionInfo, private readonly cwd = process.cwd()) {
    const handlers: Record<string, Handler> = {
      kernel_info_request: (m, ch) => this.kernelInfo(m, ch),
      execute_request: (m) => this.execute(m),
      complete_request: (m) => this.complete(m),
      inspect_request: (m) => this.inspect(m),
      is_complete_request: (m) => this.isComplete(m),
      history_request: (m) => this.server.reply("shell", m, "history_reply", { status: "ok", history: this.history.query(m.content as HistoryRequest) }),
      comm_info_request: (m) => this.server.reply("shell", m, "comm_info_reply", { status: "ok", comms: this.comms.info(m.content.target_name) }),
      comm_open: (m) => this.withParent(m, () => this.comms.opened(m.content as never, m.buffers)),
      comm_msg: (m) => this.withParent(m, () => this.comms.message(m.content as never, m.buffers)),
      comm_close: (m) => this.withParent(m, () => this.comms.closed(m.content as never)),
      interrupt_request: (m) => this.interrupt(m),
      shutdown_request: (m, ch) => this.shutdown(m, ch),
    };
    this.streams = captureStreams((name, text) => this.write(name, text));
    this.server = new KernelServer(info, handlers, this.streams.log);
    this.comms = new CommManager((type, content, buffers) => this.publish(type, content, buffers), this.streams.log);
    api.attachKernel({
      display: (value, id, update) => this.show(value, id, update),
      clearOutput: (wait) => this.publish("clear_output", { wait }),
      input: (prompt, password) => this.input(prompt, password),
      registerCommTarget: (name, target) => this.comms.registerTarget(name, target),
      openComm: (target, data) => this.comms.open(target, data),
    });
    // A rejection that nothing handles fails the running cell, or shows in the last cell's output; the kernel goes on.
    process.on("unhandledRejection", (reason) => this.unhandledRejection(reason));
    Object.defineProperty(globalThis, "signal", { get: () => api.signal, configurable: true });
    Object.defineProperty(globalThis, "display", { value: api.display, configurable: true, writable: true });
  }

  start(): Promise<void> {
    return this.server.start();
  }

  // ---- output -------------------------------------------------------------------------------------------------

  private write(name: "stdout" | "stderr", text: string): void {
    if (this.pending && this.pending.name !== name) this.flush();
    this.pending = { name, text: (this.pending?.text ?? "") + text };
    this.timer ??= setTimeout(() => this.flush(), 30);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return;
    const content = this.pending;
    this.pending = undefined;
    void this.server.publish("stream", content, this.parent);
  }

  private publish(type: string, content: object, buffers?: Buffer[]): Promise<void> {
    this.flush();
    return this.server.publish(type, content, this.parent, { buffers });
  }

  private withParent(msg: Message, fn: () => void): void {
    const saved = this.parent;
    this.flush();
    this.parent = msg;
    try {
      fn();
    } finally {
      this.flush();
      this.parent = saved;
    }
  }

  private bundle(value: unknown): DisplayData {
    return this.plotly.apply(bundleOf(value));
  }

  private show(value: unknown, displayId: string | undefined, update: boolean): void {
    void this.publish(update ? "update_display_data" : "display_data", { ...this.bundle(value), transient: displayId ? { display_id: displayId } : {} });
  }

  private input(prompt: string, password: boolean): Promise<string> {
    const running = this.current;
    if (!running) return Promise.reject(new Error("input() needs a running cell"));
    if (!running.allowStdin) return Promise.reject(Object.assign(new Error("this frontend does not support input (allow_stdin is false)"), { name: "StdinNotImplementedError" }));
    this.flush();
    const signal = running.controller.signal;
    return new Promise((resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      this.server.input(running.msg, prompt, password).then(resolve);
    });
  }

  // ---- execution ----------------------------------------------------------------------------------------------

  private typescript(): Promise<{ compiler: CellCompiler; transform: typeof transformCell }> {
    return (this.tools ??= (async () => {
      const [{ CellCompiler }, { transformCell }] = await Promise.all([import("./compiler.ts"), import("./transform.ts")]);
      const typeRoots = [dirname(dirname(require.resolve("@types/node/package.json")))];
      const paths = Object.fromEntries(Object.keys(ALIASES).map((specifier) => [specifier, typesOf(specifier)]));
      return { compiler: new CellCompiler(this.cwd, typeRoots, paths), transform: transformCell };
    })());
  }

  private runtime(): CellRuntime {
    const filename = join(this.cwd, "[cell]");
    const fromCwd = new vm.Script("(specifier, options) => import(specifier, options)", {
      filename,
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    }).runInThisContext() as CellRuntime["import"];
    return {
      import: async (specifier, options) => {
        if (BROWSER_ONLY[specifier]) throw new Error(BROWSER_ONLY[specifier]);
        const alias = ALIASES[specifier];
        if (specifier === "tslab") this.hookTslab();
        if (alias) return import(pathToFileURL(alias).href);
        const ns = (await fromCwd(specifier, options)) as Record<string, unknown>;
        // A local .ts file outside a "type": "module" package loads as CommonJS: Node sees only its default export.
        const commonJs = /^\.{1,2}\/(.*\.[cm]?tsx?|[^.]*)$/.test(specifier) && Object.keys(ns).join() === "default" && typeof ns.default === "object" && ns.default;
        return commonJs ? { ...commonJs, default: commonJs } : ns;
      },
      meta: { url: pathToFileURL(filename).href, dirname: this.cwd, filename },
    };
  }

  /** Cells written for tslab call `tslab.display.*`: its display API reports through this hook. */
  private hookTslab(): void {
    const jupyter = require("tslab/dist/jupyter.js") as { lastWriteDisplayData: unknown };
    jupyter.lastWriteDisplayData = (d: { data: object; metadata?: object; transient?: { display_id?: string } }, update: boolean) => {
      const id = d.transient?.display_id;
      void this.publish(update ? "update_display_data" : "display_data", { data: d.data, metadata: d.metadata ?? {}, transient: id ? { display_id: id } : {} });
    };
  }

  private async run(code: string, name: string, cell: Running): Promise<Outcome> {
    if (!code.trim()) return { ok: true, value: undefined };
    const { compiler, transform } = await this.typescript();
    const diagnostics = compiler.check(code);
    if (diagnostics.length) return { ok: false, error: new CompileError(name, code, diagnostics) };
    this.evaluator ??= new Evaluator(this.runtime());
    // one macrotask after the cell settles: Node reports the promises it left rejected before that
    const running = this.evaluator.run(transform(code, name), name).then((o) => new Promise<Outcome>((r) => setImmediate(() => r(o))));
    // An interrupted cell gets half a second to stop through its signal; then the kernel moves on without it.
    const signal = cell.controller.signal;
    const interrupted = new Promise<Outcome>((resolve) =>
      signal.addEventListener("abort", () => setTimeout(() => resolve({ ok: false, error: signal.reason }), 500), { once: true }),
    );
    try {
      return await Promise.race([running, interrupted, cell.floating]);
    } finally {
      compiler.commit();
    }
  }

  private unhandledRejection(reason: unknown): void {
    if (this.current) return this.current.reportFloating(reason);
    // from a cell that has finished (a timer, a cell left running after an interrupt): shown under the last cell
    const error = this.describe(new UnhandledRejection(reason));
    this.streams.log(`${error.ename}: ${error.evalue}`);
    void this.publish("error", error);
  }

  private describe(error: unknown): { ename: string; evalue: string; traceback: string[] } {
    if (error instanceof CompileError) return { ename: error.name, evalue: error.message, traceback: error.traceback };
    if (error instanceof UnhandledRejection) {
      return { ename: error.name, evalue: error.message, traceback: [`${error.name}: ${error.message}`, ...this.describe(error.reason).traceback] };
    }
    if (error instanceof Error) {
      const isKernel = (frame: string) => frame.includes("node:inspector") || frame.includes(dirname(KERNEL_DIR) + "/");
      return { ename: error.name, evalue: error.message, traceback: this.evaluator?.traceback(error, isKernel) ?? [String(error.stack)] };
    }
    return { ename: typeof error, evalue: inspect(error), traceback: [`Uncaught ${inspect(error)}`] };
  }

  private async execute(msg: Message): Promise<void> {
    const invalid = invalidExecute(msg.content);
    if (invalid) {
      this.streams.log(invalid);
      const error = { ename: "InvalidRequest", evalue: invalid, traceback: [`InvalidRequest: ${invalid}`] };
      return this.server.reply("shell", msg, "execute_reply", { status: "error", execution_count: this.count, ...error });
    }
    const c = msg.content as { code: string; silent?: boolean; store_history?: boolean; user_expressions?: Record<string, string>; allow_stdin?: boolean; stop_on_error?: boolean };
    const code = c.code;
    const silent = c.silent === true;
    const store = !silent && c.store_history !== false;
    if (store) this.count++;
    const name = store ? `In[${this.count}]` : `In[~${++this.silentRuns}]`;
    this.flush();
    this.parent = msg;
    if (!silent) void this.publish("execute_input", { code, execution_count: this.count });
    if (store) this.history.add(this.count, code);
    let reportFloating!: (reason: unknown) => void;
    const floating = new Promise<Outcome>((resolve) => (reportFloating = (reason) => resolve({ ok: false, error: new UnhandledRejection(reason) })));
    const running: Running = { msg, controller: new AbortController(), allowStdin: c.allow_stdin !== false, floating, reportFloating };
    this.current = running;
    api.enterCell(running.controller.signal);

    let reply: object;
    let outcome: Outcome;
    try {
      outcome = await this.run(code, name, running);
      if (outcome.ok && outcome.value !== undefined && !silent) {
        const result = this.bundle(outcome.value);
        void this.publish("execute_result", { execution_count: this.count, ...result });
        if (store) this.history.setOutput(this.count, String(result.data["text/plain"]));
      }
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (outcome.ok) {
      reply = { status: "ok", execution_count: this.count, user_expressions: await this.userExpressions(c.user_expressions ?? {}), payload: [] };
    } else {
      const error = this.describe(outcome.error);
      if (!silent) void this.publish("error", error);
      reply = { status: "error", execution_count: this.count, ...error };
    }
    if (this.current === running) this.current = undefined;
    this.flush();
    if (!outcome.ok && c.stop_on_error !== false) await this.server.abortQueued();
    await this.server.reply("shell", msg, "execute_reply", reply);
  }

  private async userExpressions(expressions: Record<string, string>): Promise<Record<string, object>> {
    const out: Record<string, object> = {};
    if (!Object.keys(expressions).length) return out;
    const { transform } = await this.typescript();
    this.evaluator ??= new Evaluator(this.runtime());
    for (const [key, expression] of Object.entries(expressions)) {
      const name = `In[~${++this.silentRuns}]`;
      const outcome = await this.evaluator.run(transform(String(expression), name), name);
      out[key] = outcome.ok ? { status: "ok", ...bundleOf(outcome.value) } : { status: "error", ...this.describe(outcome.error) };
    }
    return out;
  }

  private interrupt(msg: Message): Promise<void> {
    this.current?.controller.abort(new DOMException("interrupted by the user (interrupt_request)", "AbortError"));
    return this.server.reply("control", msg, "interrupt_reply", { status: "ok" });
  }

  private async shutdown(msg: Message, channel: Channel): Promise<void> {
    const restart = msg.content.restart === true;
    this.current?.controller.abort(new DOMException("the kernel is shutting down", "AbortError"));
    await this.server.reply(channel, msg, "shutdown_reply", { status: "ok", restart });
    setImmediate(() => void this.server.close().then(() => setTimeout(() => process.exit(0), 100)));
  }

  // ---- introspection ------------------------------------------------------------------------------------------

  private kernelInfo(msg: Message, channel: Channel): Promise<void> {
    const ts = version("typescript");
    setTimeout(() => void this.typescript(), 200); // warm the language service while the user types
    return this.server.reply(channel, msg, "kernel_info_reply", {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: "m1-workbench",
      implementation_version: JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version,
      language_info: {
        name: "typescript",
        version: ts,
        mimetype: "text/typescript",
        file_extension: ".ts",
        pygments_lexer: "typescript",
        codemirror_mode: { mode: "typescript", name: "javascript", typescript: true },
        nbconvert_exporter: "script",
      },
      banner: `m1-workbench kernel: TypeScript ${ts} on Node.js ${process.version}`,
      help_links: [],
      debugger: false,
    });
  }

  private async complete(msg: Message): Promise<void> {
    const code = String(msg.content.code ?? "");
    const cursor = codePointsToUtf16(code, Number(msg.content.cursor_pos ?? [...code].length));
    const { compiler } = await this.typescript();
    const r = compiler.complete(code, cursor);
    const [start, end] = [utf16ToCodePoints(code, r.start), utf16ToCodePoints(code, r.end)];
    await this.server.reply("shell", msg, "complete_reply", {
      status: "ok",
      matches: r.matches,
      cursor_start: start,
      cursor_end: end,
      metadata: { _jupyter_types_experimental: r.types.map((t) => ({ ...t, start, end })) },
    });
  }

  private async inspect(msg: Message): Promise<void> {
    const code = String(msg.content.code ?? "");
    const cursor = codePointsToUtf16(code, Number(msg.content.cursor_pos ?? 0));
    const { compiler } = await this.typescript();
    const info = compiler.inspect(code, cursor);
    const data = info
      ? { "text/plain": [info.signature, info.docs].filter(Boolean).join("\n\n"), "text/markdown": ["```typescript\n" + info.signature + "\n```", info.docs].filter(Boolean).join("\n\n") }
      : {};
    await this.server.reply("shell", msg, "inspect_reply", { status: "ok", found: !!info, data, metadata: {} });
  }

  private async isComplete(msg: Message): Promise<void> {
    const { completeness } = await import("./compiler.ts");
    await this.server.reply("shell", msg, "is_complete_reply", completeness(String(msg.content.code ?? "")));
  }
}
