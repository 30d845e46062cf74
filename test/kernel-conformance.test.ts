/** The Jupyter project's conformance suite (Debian python3-jupyter-kernel-test, `KernelTests`) on the m1 kernel. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { jupyterEnv } from "./kernel-harness.ts";
import { ROOT, tempDir } from "./helpers.ts";

test("jupyter_kernel_test's KernelTests pass on the m1 kernel, every applicable test enabled", { timeout: 300_000 }, async () => {
  const { dir, cleanup } = tempDir("m1-conformance-");
  try {
    let stderr: string;
    try {
      ({ stderr } = await promisify(execFile)("/usr/bin/python3", [join(ROOT, "test", "kernel_conformance.py")], { env: jupyterEnv(dir), cwd: dir }));
    } catch (err) {
      assert.fail(`the conformance suite failed:\n${(err as { stderr: string }).stderr}`);
    }
    // unittest reports on stderr: one line per test, then "OK (skipped=N)"
    const ran = stderr.match(/^test_\w+ .*\.\.\. (ok|skipped.*)$/gm) ?? [];
    assert.ok(ran.length >= 12, stderr); // the 12 tests of jupyter_kernel_test 0.4.5
    assert.deepEqual(ran.filter((line) => !line.endsWith("... ok")).map((line) => line.split(" ")[0]), ["test_pager"], stderr);
  } finally {
    cleanup();
  }
});
