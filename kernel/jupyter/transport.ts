/** How `m1 run` reaches a kernel: one it starts itself (zeromq), or one on a Jupyter server (@jupyterlab/services). */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { InputError } from "../../engine/errors.ts";
import { KernelClient } from "./client.ts";
import { writeConnectionFile } from "./connection.ts";
import { CLI } from "./kernelspec.ts";

export interface ExecuteReply {
  status: "ok" | "error" | "aborted";
  execution_count?: number | null;
  ename?: string;
  evalue?: string;
}

export interface Transport {
  /** kernel_info_reply content */
  readonly kernelInfo: Record<string, any>;
  /** `silent`: no outputs, no execution count (used to warm the kernel up). */
  execute(code: string, onOutput: (type: string, content: Record<string, any>) => void, silent?: boolean): Promise<ExecuteReply>;
  interrupt(): Promise<void>;
  /** Settles, with what happened, if the kernel dies (its process exits, or the server reports it dead). */
  readonly died: Promise<string>;
  /** Ends the kernel; `force` kills it without asking. */
  shutdown(force?: boolean): Promise<void>;
}

/** Starts our kernel (kernel/bin/m1.mjs kernel) in `cwd` with a fresh connection file. */
export async function localKernel(cwd: string): Promise<Transport> {
  const dir = mkdtempSync(join(tmpdir(), "m1-run-"));
  const file = join(dir, "kernel.json");
  const info = await writeConnectionFile(file);
  const child: ChildProcess = spawn(process.execPath, [CLI, "kernel", "--connection-file", file], { cwd, stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ? `the kernel process was killed by ${signal}` : `the kernel process exited with code ${code}`)),
  );
  let connected: Awaited<ReturnType<typeof KernelClient.connect>>;
  try {
    connected = await Promise.race([
      KernelClient.connect(info),
      exited.then((how) => Promise.reject(new Error(`${how} before it answered`))),
    ]);
  } catch (err) {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const { client, kernelInfo } = connected;
  let closed = false;
  return {
    kernelInfo: kernelInfo.content,
    died: exited,
    async execute(code, onOutput, silent = false) {
      const reply = await client.execute(code, (m) => onOutput(m.header.msg_type, m.content), silent);
      return reply.content as ExecuteReply;
    },
    async interrupt() {
      await client.request("control", "interrupt_request", {}).reply;
    },
    async shutdown(force = false) {
      if (closed) return;
      closed = true;
      if (!force && child.exitCode === null) {
        const asked = client.request("control", "shutdown_request", { restart: false }).reply;
        await Promise.race([asked.then(() => exited), new Promise((r) => setTimeout(r, 5000).unref())]);
      }
      client.close();
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts kernel `name` on a Jupyter server and talks to it over the server's websocket. With `notebookPath` (the
 * notebook's path under the server's root) it starts a notebook session there, so the kernel runs in the
 * notebook's folder as when JupyterLab opens it (relative imports work); without it, in the server's root.
 */
export async function serverKernel(baseUrl: string, token: string, name: string, notebookPath?: string): Promise<Transport> {
  const [{ ServerConnection, KernelManager, KernelSpecAPI, SessionManager }, { WebSocket }] = await Promise.all([import("@jupyterlab/services"), import("ws")]);
  const serverSettings = ServerConnection.makeSettings({ baseUrl, wsUrl: baseUrl.replace(/^http/, "ws"), token, appendToken: true, WebSocket: WebSocket as never });
  let specs;
  try {
    specs = await KernelSpecAPI.getSpecs(serverSettings);
  } catch (err) {
    throw new InputError(`cannot reach the Jupyter server at ${baseUrl}: ${(err as Error).message}`);
  }
  if (!specs.kernelspecs[name]) {
    throw new InputError(`the Jupyter server at ${baseUrl} has no kernel "${name}" (it has: ${Object.keys(specs.kernelspecs).join(", ") || "none"})`);
  }
  const manager = new KernelManager({ serverSettings });
  await manager.ready;
  const sessions = notebookPath === undefined ? null : new SessionManager({ serverSettings, kernelManager: manager });
  const session = await sessions?.startNew({ path: notebookPath!, type: "notebook", name: basename(notebookPath!), kernel: { name } });
  const kernel = session ? session.kernel! : await manager.startNew({ name });
  const info = await kernel.info;
  const died = new Promise<string>((resolve) =>
    kernel.statusChanged.connect((_, status) => {
      if (status === "dead" || status === "autorestarting" || status === "restarting") resolve(`the server reports the kernel ${status}`);
    }),
  );
  return {
    kernelInfo: info as unknown as Record<string, any>,
    died,
    async execute(code, onOutput, silent = false) {
      const future = kernel.requestExecute({ code, silent, stop_on_error: true, allow_stdin: false, store_history: !silent });
      future.onIOPub = (msg) => {
        if (msg.header.msg_type !== "status") onOutput(msg.header.msg_type, msg.content as Record<string, any>);
      };
      const reply = await future.done;
      return reply.content as ExecuteReply;
    },
    async interrupt() {
      await kernel.interrupt();
    },
    async shutdown() {
      await (session ?? kernel).shutdown().catch(() => {});
      sessions?.dispose();
      manager.dispose();
    },
  };
}
