/** `m1 run --server URL --token T`: the same run through an existing Jupyter server, via @jupyterlab/services. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./helpers.ts";
import { startJupyterServer, type JupyterServer } from "./kernel-harness.ts";

const M1 = join(ROOT, "kernel", "bin", "m1.mjs");
let server: JupyterServer;

async function m1(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await promisify(execFile)(process.execPath, [M1, ...args], { cwd: ROOT });
    return { code: 0, stderr };
  } catch (err) {
    return err as { code: number; stderr: string };
  }
}

before(async () => {
  server = await startJupyterServer();
});
after(async () => {
  await server?.stop();
});

test("m1 run --server runs the notebook on the server's m1 kernel, with parameters and timeout", { timeout: 90_000 }, async () => {
  const path = join(server.root, "remote.ipynb");
  const cell = (source: string, tags?: string[]) => ({ cell_type: "code", metadata: tags ? { tags } : {}, source, outputs: [], execution_count: null });
  const nb = { nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [cell("const n = 2;", ["parameters"]), cell("console.log(process.cwd());\nn * 21")] };
  writeFileSync(path, JSON.stringify(nb));
  const out = join(server.root, "out.ipynb");
  const r = await m1(["run", path, "--server", server.url, "--token", server.token, "-p", "n=5", "--out", out, "--timeout", "30"]);
  assert.equal(r.code, 0, r.stderr);
  const done = JSON.parse(readFileSync(out, "utf8"));
  assert.deepEqual(done.cells.map((c: { execution_count: number }) => c.execution_count), [1, 2, 3]);
  assert.deepEqual(done.cells[2].outputs.map((o: { output_type: string }) => o.output_type), ["stream", "execute_result"]);
  assert.equal(done.cells[2].outputs[0].text.trim(), server.root, "the kernel ran on the server");
  assert.equal(done.cells[2].outputs[1].data["text/plain"], "105");
});

test("m1 run --server --server-path runs the kernel in the notebook's folder, so relative imports work", { timeout: 90_000 }, async () => {
  mkdirSync(join(server.root, "sub"), { recursive: true });
  writeFileSync(join(server.root, "sub", "helper.ts"), "export const answer: number = 42;\n");
  const path = join(server.root, "sub", "relative.ipynb");
  const cell = (source: string) => ({ cell_type: "code", metadata: {}, source, outputs: [], execution_count: null });
  writeFileSync(path, JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [cell("import { answer } from \"./helper.ts\";\nconsole.log(process.cwd());\nanswer")] }));
  const out = join(server.root, "sub", "relative.out.ipynb");
  const r = await m1(["run", path, "--server", server.url, "--token", server.token, "--server-path", "sub/relative.ipynb", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const outputs = JSON.parse(readFileSync(out, "utf8")).cells[0].outputs;
  assert.equal(outputs[0].text.trim(), join(server.root, "sub"));
  assert.equal(outputs[1].data["text/plain"], "42");
  const bad = await m1(["run", path, "--server-path", "sub/relative.ipynb"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--server-path needs --server/);
});

test("m1 run --server with an unknown kernel or a bad token says so", { timeout: 60_000 }, async () => {
  const path = join(server.root, "remote.ipynb");
  const r = await m1(["run", path, "--server", server.url, "--token", server.token, "--kernel", "nope"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /has no kernel "nope" \(it has: .*m1/);
  const denied = await m1(["run", path, "--server", server.url, "--token", "wrong"]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /cannot reach the Jupyter server at http:\/\/127\.0\.0\.1:\d+: /);
});
