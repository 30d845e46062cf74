/**
 * What cell code gets from the kernel: `import { signal, display, input, clearOutput, comms } from "m1-workbench/kernel"`.
 * `signal` and `display` are also globals in cells. Outside the m1 kernel these throw, except `signal`.
 */
import type { Comm, CommTarget } from "./comms.ts";

export type { Comm, CommTarget };

export interface KernelBridge {
  display(value: unknown, displayId: string, update: boolean): void;
  clearOutput(wait: boolean): void;
  input(prompt: string, password: boolean): Promise<string>;
  registerCommTarget(name: string, target: CommTarget): void;
  openComm(targetName: string, data: unknown): Comm;
}

let bridge: KernelBridge | undefined;

function kernel(): KernelBridge {
  if (!bridge) throw new Error("m1-workbench/kernel works inside the m1 Jupyter kernel only");
  return bridge;
}

/** Used by the kernel when it starts. */
export function attachKernel(b: KernelBridge): void {
  bridge = b;
}

/** The running cell's AbortSignal, aborted when the user interrupts the kernel. Pass it to long engine calls. */
export let signal: AbortSignal = new AbortController().signal;

/** Used by the kernel when a cell starts. */
export function enterCell(s: AbortSignal): void {
  signal = s;
}

export interface DisplayHandle {
  readonly id: string;
  /** Replaces what this handle displayed (update_display_data), wherever it is shown. */
  update(value: unknown): void;
}

let displays = 0;

/** Shows `value` now (display_data), as the last expression of a cell would be shown. */
export function display(value: unknown, options: { id?: string } = {}): DisplayHandle {
  const id = options.id ?? `m1-${process.pid}-${++displays}`;
  kernel().display(value, id, false);
  return { id, update: (v) => kernel().display(v, id, true) };
}

/** Clears the cell's output; with `wait`, only when the next output arrives. */
export function clearOutput(wait = false): void {
  kernel().clearOutput(wait);
}

/** Asks the user for a line of text (input_request on stdin). */
export function input(prompt = "", options: { password?: boolean } = {}): Promise<string> {
  return kernel().input(prompt, options.password ?? false);
}

export const comms = {
  /** Handles comms the frontend opens to `name`. */
  registerTarget(name: string, target: CommTarget): void {
    kernel().registerCommTarget(name, target);
  },
  /** Opens a comm to a frontend target. */
  open(targetName: string, data: unknown = {}): Comm {
    return kernel().openComm(targetName, data);
  },
};
