/**
 * `m1 run <notebook.ipynb> [--out executed.ipynb] [--html report.html] [-p name=value …] [--timeout S]
 *        [--server URL --token T [--server-path PATH]] [--kernel NAME]`
 * Runs a notebook headless on the m1 kernel (started here, or on a Jupyter server), cell by cell. A failing or
 * timed-out cell stops the run: every output so far and the error are still written, and the exit code is 1.
 */
import { basename, dirname, resolve } from "node:path";
import { writeFileSync } from "node:fs";
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { KERNEL_NAME } from "../jupyter/kernelspec.ts";
import { injectParameters, OutputCollector, parseParameter, readNotebook, sourceOf, writeNotebook, type Cell, type Notebook } from "../notebook/notebook.ts";
import { renderReport } from "../notebook/report.ts";
import { localKernel, serverKernel, type Transport } from "../jupyter/transport.ts";

/** How long a timed-out cell has to stop after the interrupt before its kernel is killed. */
const INTERRUPT_GRACE_MS = 5000;

const delay = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms).unref());

export interface RunResult {
  /** The first failing cell (index in nb.cells), or null when all ran. */
  failed: { index: number; message: string } | null;
}

/** The notebook's kernel must be ours, or any TypeScript kernel (tslab notebooks run as they are). */
function checkKernel(nb: Notebook, path: string): void {
  const spec = nb.metadata.kernelspec;
  const language = spec?.language ?? nb.metadata.language_info?.name;
  if (!spec?.name || spec.name === KERNEL_NAME || language === "typescript") return;
  throw new InputError(`notebook ${path} is for kernel "${spec.name}"${language ? ` (${language})` : ""}; m1 run runs TypeScript notebooks on the m1 kernel`);
}

function describeCell(nb: Notebook, index: number): string {
  const cell = nb.cells[index];
  const first = sourceOf(cell).trim().split("\n")[0];
  return `cell ${index + 1}${cell.id ? ` (id ${cell.id})` : ""}: ${first.length > 60 ? first.slice(0, 59) + "…" : first}`;
}

/** Runs every code cell in order, filling in outputs and execution counts. */
export async function runNotebook(nb: Notebook, kernel: Transport, timeoutS: number | undefined, progress: (line: string) => void): Promise<RunResult> {
  nb.metadata.language_info = kernel.kernelInfo.language_info;
  nb.metadata.kernelspec ??= { name: KERNEL_NAME, display_name: "TypeScript (m1-workbench)", language: "typescript" };
  const collector = new OutputCollector();
  const code = nb.cells.map((c, i) => [c, i] as [Cell, number]).filter(([c]) => c.cell_type === "code");
  for (const [cell] of code) {
    cell.outputs = [];
    cell.execution_count = null;
  }
  // The first cell would pay for loading the TypeScript tooling; --timeout is about the cells themselves.
  const warm = await Promise.race([kernel.execute("void 0;", () => {}, true), kernel.died]);
  if (typeof warm === "string") throw new InputError(`the kernel died before the first cell: ${warm}`);
  for (const [n, [cell, index]] of code.entries()) {
    const source = sourceOf(cell);
    if (!source.trim()) continue;
    const sink = collector.forCell(cell);
    const started = Date.now();
    const execution = kernel.execute(source, sink);
    const died = kernel.died.then((how) => ({ died: how }));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = timeoutS === undefined ? new Promise<never>(() => {}) : new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutS * 1000)));
    const reply = await Promise.race([execution, timedOut, died]);
    clearTimeout(timer);
    const fail = (ename: string, message: string): RunResult => {
      sink("error", { ename, evalue: message, traceback: [`${ename}: ${message}`] });
      progress(`[${n + 1}/${code.length}] ${describeCell(nb, index)}: ${message}`);
      return { failed: { index, message: `${describeCell(nb, index)}\n  ${message}` } };
    };
    if (reply === "timeout") {
      // synchronous code never lets the kernel read the interrupt: past a grace period the kernel is killed
      void kernel.interrupt().catch(() => {});
      const stopped = await Promise.race([execution, died, delay(INTERRUPT_GRACE_MS, null)]);
      if (stopped === null) await kernel.shutdown(true);
      const killed = stopped === null || "died" in stopped;
      return fail("CellTimeoutError", `the cell ran longer than --timeout ${timeoutS} s and was interrupted${killed ? " (the kernel did not stop, so it was killed)" : ""}`);
    }
    if ("died" in reply) return fail("KernelDied", `the kernel died while this cell ran: ${reply.died}`);
    cell.execution_count = reply.execution_count ?? null;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (reply.status !== "ok") {
      const why = reply.status === "error" ? `${reply.ename}: ${reply.evalue}` : "the kernel aborted it";
      progress(`[${n + 1}/${code.length}] ${describeCell(nb, index)}: failed after ${seconds} s`);
      return { failed: { index, message: `${describeCell(nb, index)}\n  ${why.split("\n").join("\n  ")}` } };
    }
    progress(`[${n + 1}/${code.length}] ok ${seconds} s`);
  }
  return { failed: null };
}

export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    out: { type: "string" },
    html: { type: "string" },
    parameter: { type: "string", short: "p", multiple: true },
    timeout: { type: "number" },
    server: { type: "string" },
    token: { type: "string" },
    kernel: { type: "string" },
    "server-path": { type: "string" },
  });
  if (positionals.length !== 1) throw new InputError("expected one notebook (m1 run <notebook.ipynb> [--out executed.ipynb] [--html report.html] [-p name=value ...] [--timeout S])");
  const timeoutS = values.timeout;
  if (timeoutS !== undefined && !(timeoutS > 0)) throw new InputError(`--timeout: "${timeoutS}" is not a positive number of seconds`);
  if (values.token !== undefined && !values.server) throw new InputError("--token needs --server");
  if (values["server-path"] !== undefined && !values.server) throw new InputError("--server-path needs --server");
  const path = resolve(positionals[0]);
  const nb = readNotebook(path);
  const unknown = injectParameters(nb, (values.parameter ?? []).map(parseParameter));
  for (const name of unknown) process.stderr.write(`m1 run: warning: parameter "${name}" is not declared in the cell tagged "parameters"\n`);
  if (!values.server) checkKernel(nb, path);

  const log = (line: string) => process.stderr.write(`m1 run: ${line}\n`);
  const kernel = values.server ? await serverKernel(values.server, values.token ?? "", values.kernel ?? KERNEL_NAME, values["server-path"]) : await localKernel(dirname(path));
  let result: RunResult = { failed: null };
  try {
    result = await runNotebook(nb, kernel, timeoutS, log);
  } finally {
    await kernel.shutdown();
    // every output so far, also when the run itself failed
    if (values.out) writeNotebook(values.out, nb);
    if (values.html) writeFileSync(values.html, renderReport(nb, basename(path), result.failed?.index ?? null));
  }
  if (result.failed) {
    log(`${positionals[0]}: ${result.failed.message}`);
    return 1;
  }
  log(`${positionals[0]}: all cells ran${values.out ? `, wrote ${values.out}` : ""}${values.html ? `, wrote ${values.html}` : ""}`);
  return 0;
}
