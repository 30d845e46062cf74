/**
 * How soon the kernel answers after it is started: spawn `m1 kernel` on a fresh connection file, connect, and time
 * until kernel_info is answered (KernelClient.connect waits for it); then shut it down. Best and median of --tries.
 * The goal is under a second (kernel/README.md).
 *
 *   node --import tsx benchmarks/perf/kernel-start.ts [--tries 5]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { KernelClient } from "../../kernel/jupyter/client.ts";
import { writeConnectionFile } from "../../kernel/jupyter/connection.ts";

const { values } = parseArgs({ options: { tries: { type: "string", default: "5" } } });
const M1 = fileURLToPath(new URL("../../kernel/bin/m1.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "m1-kernel-start-"));
const times: number[] = [];
try {
  for (let i = 0; i < Number(values.tries); i++) {
    const info = await writeConnectionFile(join(dir, `k${i}.json`));
    const t0 = performance.now();
    const child = spawn(process.execPath, [M1, "kernel", "--connection-file", join(dir, `k${i}.json`)], { cwd: dir, stdio: "ignore" });
    const exited = new Promise((r) => child.once("exit", r));
    const { client } = await KernelClient.connect(info);
    times.push(performance.now() - t0);
    await client.request("control", "shutdown_request", { restart: false }).reply;
    await exited;
    client.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const sorted = [...times].sort((a, b) => a - b);
console.log(`kernel_info answered after spawn: best ${sorted[0].toFixed(0)} ms, median ${sorted[sorted.length >> 1].toFixed(0)} ms ` +
  `(${times.map((t) => t.toFixed(0)).join(", ")} ms; load average ${loadavg()[0].toFixed(1)}; goal < 1000 ms)`);
