// Runs untrusted programs (generated code under test) so that they cannot harm the host: each run gets its own
// network namespace (no network), PID namespace (every process it starts dies with it), mount namespace in which
// the only writable place is a small tmpfs at /tmp holding its files, an unprivileged user (nobody) without
// capabilities, and resource limits (CPU seconds, address space, processes, file size, open files) plus a
// wall-clock timeout and a cap on collected output. Needs root (to create the namespaces and mounts) and
// util-linux's unshare, setpriv and prlimit, as on Debian; without them it refuses to run anything.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { M1Error } from "../../engine/errors.ts";

export interface SandboxLimits {
  /** wall-clock limit of one run (default 10 000 ms); CPU time is limited to the same number of seconds, rounded up */
  timeMs: number;
  /** address space (default 1 GiB) */
  memoryBytes: number;
  /** processes and threads of the sandbox user (default 16) */
  processes: number;
  /** stdout + stderr kept; more kills the run (default 1 MiB) */
  outputBytes: number;
  /** size of the writable /tmp and of any one file (default 16 MiB) */
  diskBytes: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { timeMs: 10_000, memoryBytes: 2 ** 30, processes: 16, outputBytes: 2 ** 20, diskBytes: 16 * 2 ** 20 };

export interface SandboxRun {
  /** null when killed by a signal */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** ran past the wall-clock limit */
  timedOut: boolean;
  /** wrote more than the output cap */
  outputOverflow: boolean;
}

export class SandboxError extends M1Error {}

const NOBODY = 65534;
const WORLD_WRITABLE = ["/var/tmp", "/dev/shm", "/run/lock"];

/** Why the sandbox cannot run on this machine, or null when it can. */
export function sandboxUnavailable(): string | null {
  if (process.platform !== "linux") return "the code sandbox needs Linux namespaces";
  if (process.getuid?.() !== 0) return "the code sandbox needs root (it creates network, PID and mount namespaces and drops to user nobody)";
  for (const tool of ["unshare", "setpriv", "prlimit"]) {
    if (spawnSync(tool, ["--version"], { stdio: "ignore" }).status !== 0) return `the code sandbox needs util-linux's ${tool} on PATH`;
  }
  return null;
}

/**
 * Runs `argv` (e.g. ["python3", "-I", "main.py"]) in a fresh sandbox whose /tmp holds `files` and is the working
 * directory; `stdin` is its input.
 */
export async function runSandboxed(files: Record<string, string>, argv: string[], stdin: string, limits: Partial<SandboxLimits> = {}): Promise<SandboxRun> {
  const why = sandboxUnavailable();
  if (why) throw new SandboxError(why);
  const l = { ...DEFAULT_LIMITS, ...limits };
  const host = fs.mkdtempSync(path.join(os.tmpdir(), "m1-sandbox-"));
  try {
    fs.mkdirSync(path.join(host, "files"));
    fs.mkdirSync(path.join(host, "box"));
    for (const [name, text] of Object.entries(files)) {
      if (name.includes("/") || name.startsWith(".")) throw new SandboxError(`sandbox file name "${name}" must be a plain name`);
      fs.writeFileSync(path.join(host, "files", name), text);
    }
    return await run(host, argv, stdin, l);
  } finally {
    fs.rmSync(host, { recursive: true, force: true });
  }
}

function run(host: string, argv: string[], stdin: string, l: SandboxLimits): Promise<SandboxRun> {
  const kib = Math.ceil(l.diskBytes / 1024);
  // runs as root inside the new namespaces, then becomes nobody with the limits set
  const setup = [
    "set -e",
    `mount -t tmpfs -o size=${kib}k,mode=0755 tmpfs "$1/box"`,
    `cp "$1"/files/* "$1/box/" 2>/dev/null || true`,
    `chown -R ${NOBODY}:${NOBODY} "$1/box"`,
    `mount --bind "$1/box" /tmp`,
    ...WORLD_WRITABLE.map((d) => `if [ -d ${d} ]; then mount -t tmpfs -o ro,size=4k tmpfs ${d}; fi`),
    "cd /tmp",
    "shift",
    // this shell stays the namespace's PID 1 as root, so that --kill-child reaches it (a process that changed its
    // user loses its parent-death signal); when it dies, the kernel kills every process left in the namespace
    "exec 3<&0",
    `setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs ` +
      `prlimit --as=${l.memoryBytes} --cpu=${Math.ceil(l.timeMs / 1000)} --nproc=${l.processes} --fsize=${l.diskBytes} --nofile=64 --core=0 -- "$@" <&3 3<&- &`,
    "exec 3<&-",
    "wait $!",
  ].join("\n");
  const child = spawn(
    "unshare",
    ["--net", "--pid", "--fork", "--mount", "--ipc", "--uts", "--mount-proc", "--kill-child", "--propagation", "private", "sh", "-c", setup, "sh", host, ...argv],
    { stdio: ["pipe", "pipe", "pipe"], env: { PATH: "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8", HOME: "/tmp" } },
  );
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    let outputOverflow = false;
    const kill = () => child.kill("SIGKILL"); // --kill-child takes the sandbox's PID 1 and with it every process in it
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, l.timeMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > l.outputBytes) {
        outputOverflow = true;
        kill();
        return;
      }
      into.push(chunk);
    };
    child.stdout.on("data", collect(out));
    child.stderr.on("data", collect(err));
    child.stdin.on("error", () => undefined); // the program may exit without reading its input
    child.stdin.end(stdin);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new SandboxError(`cannot start the sandbox: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ exitCode: code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), timedOut, outputOverflow });
    });
  });
}
