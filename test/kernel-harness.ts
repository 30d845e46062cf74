/**
 * Test harness for the kernel: a real Jupyter server (Debian's jupyter-server) on a free loopback port with a
 * token, finding our kernel through JUPYTER_PATH, and @jupyterlab/services settings to talk to it.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { ServerConnection } from "@jupyterlab/services";
import { WebSocket } from "ws";
import { ROOT, tempDir } from "./helpers.ts";

export const JUPYTER_PATH = join(ROOT, "kernel", "jupyter");
export const CHROMIUM = "/usr/bin/chromium";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Environment for Jupyter tools: our kernelspec on JUPYTER_PATH, private config/data/runtime dirs, this node first on PATH. */
export function jupyterEnv(dir: string): NodeJS.ProcessEnv {
  for (const d of ["config", "data", "runtime"]) mkdirSync(join(dir, d), { recursive: true });
  return {
    ...process.env,
    JUPYTER_PATH,
    JUPYTER_CONFIG_DIR: join(dir, "config"),
    JUPYTER_DATA_DIR: join(dir, "data"),
    JUPYTER_RUNTIME_DIR: join(dir, "runtime"),
    PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
  };
}

export interface JupyterServer {
  url: string;
  token: string;
  /** where notebooks and files for kernels live (the kernels' working directory) */
  root: string;
  runtimeDir: string;
  settings: ServerConnection.ISettings;
  /** everything the server and its kernels wrote to stderr so far */
  log(): string;
  stop(): Promise<void>;
}

export async function startJupyterServer(): Promise<JupyterServer> {
  const { dir, cleanup } = tempDir("m1-jupyter-");
  const root = join(dir, "root");
  mkdirSync(root);
  writeFileSync(join(root, "package.json"), JSON.stringify({ type: "module" }));
  const env = jupyterEnv(dir);
  const port = await freePort();
  const token = randomUUID();
  const server = spawn(
    "/usr/bin/jupyter-server",
    ["--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1", `--ServerApp.port=${port}`, "--ServerApp.port_retries=0", `--ServerApp.token=${token}`, `--ServerApp.root_dir=${root}`],
    { env, cwd: root, stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  server.stdout.on("data", (d) => (log += d));
  server.stderr.on("data", (d) => (log += d));
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`jupyter-server exited:\n${log}`);
    if (Date.now() > deadline) throw new Error(`jupyter-server did not start within 60 s:\n${log}`);
    const ok = await fetch(`${url}/api/kernelspecs?token=${token}`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const settings = ServerConnection.makeSettings({ baseUrl: url, wsUrl: url.replace(/^http/, "ws"), token, appendToken: true, WebSocket: WebSocket as never });
  return {
    url,
    token,
    root,
    runtimeDir: env.JUPYTER_RUNTIME_DIR!,
    settings,
    log: () => log,
    async stop() {
      server.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (server.exitCode === null) server.kill("SIGKILL");
      cleanup();
    },
  };
}
