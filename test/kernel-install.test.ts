/** `m1 kernel install`, the repo's kernelspec, and shutdown_request's restart flag (start-up time: benchmarks/perf/kernel-start.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, tempDir } from "./helpers.ts";
import { JUPYTER_PATH } from "./kernel-harness.ts";
import { KernelClient } from "../kernel/jupyter/client.ts";
import { writeConnectionFile } from "../kernel/jupyter/connection.ts";
import { kernelSpec } from "../kernel/jupyter/kernelspec.ts";

const M1 = join(ROOT, "kernel", "bin", "m1.mjs");
const m1 = (args: string[], env: NodeJS.ProcessEnv = process.env) => promisify(execFile)(process.execPath, [M1, ...args], { env });

test("m1 kernel install --prefix and --user write kernel.json with the node and CLI paths, interrupt_mode message", async () => {
  const { dir, cleanup } = tempDir("m1-install-");
  try {
    const { stdout } = await m1(["kernel", "install", "--prefix", join(dir, "env")]);
    const spec = JSON.parse(readFileSync(join(dir, "env", "share", "jupyter", "kernels", "m1", "kernel.json"), "utf8"));
    assert.match(stdout, /installed kernelspec m1 in .*env\/share\/jupyter\/kernels\/m1/);
    assert.deepEqual(spec.argv, [process.execPath, M1, "kernel", "--connection-file", "{connection_file}"]);
    assert.deepEqual([spec.language, spec.interrupt_mode], ["typescript", "message"]);

    await m1(["kernel", "install", "--user", "--name", "m1-test"], { ...process.env, JUPYTER_DATA_DIR: join(dir, "data") });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "data", "kernels", "m1-test", "kernel.json"), "utf8")), spec);
    await assert.rejects(m1(["kernel", "install", "--user", "--prefix", dir]), /give --user or --prefix, not both/);
  } finally {
    cleanup();
  }
});

test("the repo's kernelspec (JUPYTER_PATH for tests) is the generated one, relative to its resource dir", () => {
  const spec = JSON.parse(readFileSync(join(JUPYTER_PATH, "kernels", "m1", "kernel.json"), "utf8"));
  assert.deepEqual(spec, kernelSpec("node", "{resource_dir}/../../../bin/m1.mjs"));
});

test("m1 kernel: a missing or broken connection file is a clear error", async () => {
  await assert.rejects(m1(["kernel"]), /m1 kernel: --connection-file is required/);
  await assert.rejects(m1(["kernel", "--connection-file", "/nonexistent.json"]), /m1 kernel: connection file \/nonexistent\.json: ENOENT/);
});

test("a started kernel answers kernel_info; shutdown_request carries restart", { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-start-");
  try {
    for (let i = 0; i < 2; i++) {
      const file = join(dir, `k${i}.json`);
      const info = await writeConnectionFile(file);
      const child = spawn(process.execPath, [M1, "kernel", "--connection-file", file], { cwd: dir, stdio: "ignore" });
      const exited = new Promise<number | null>((r) => child.once("exit", r));
      const { client } = await KernelClient.connect(info);
      const reply = await client.request("control", "shutdown_request", { restart: i === 0 }).reply;
      assert.deepEqual(reply.content, { status: "ok", restart: i === 0 });
      assert.equal(await exited, 0);
      client.close();
    }
  } finally {
    cleanup();
  }
});
