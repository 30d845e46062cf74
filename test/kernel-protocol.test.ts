/**
 * The kernel driven through a real Jupyter server with @jupyterlab/services: every request of the messaging spec
 * the kernel implements, interrupting a running generation with state kept, and badly signed messages.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as zmq from "zeromq";
import { KernelManager, type Kernel, type KernelMessage } from "@jupyterlab/services";
import { startJupyterServer, type JupyterServer } from "./kernel-harness.ts";
import { ROOT, TINY } from "./helpers.ts";
import { Signer, decode, encode, newHeader } from "../kernel/jupyter/wire.ts";
import { address, type ConnectionInfo } from "../kernel/jupyter/connection.ts";

interface Run {
  reply: KernelMessage.IExecuteReplyMsg["content"];
  iopub: KernelMessage.IIOPubMessage[];
}

let server: JupyterServer;
let manager: KernelManager;
let kernel: Kernel.IKernelConnection;

/** Executes code and collects the iopub messages of the request (status messages left out). */
async function run(code: string, options: Partial<KernelMessage.IExecuteRequestMsg["content"]> = {}, onStdin?: (msg: KernelMessage.IStdinMessage) => void): Promise<Run> {
  const future = kernel.requestExecute({ code, ...options });
  const iopub: KernelMessage.IIOPubMessage[] = [];
  future.onIOPub = (msg) => {
    if (msg.header.msg_type !== "status") iopub.push(msg);
  };
  if (onStdin) future.onStdin = onStdin;
  const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
  return { reply: reply.content, iopub };
}

const ofType = (r: Run, type: string) => r.iopub.filter((m) => m.header.msg_type === type).map((m) => m.content as Record<string, any>);
const result = (r: Run) => ofType(r, "execute_result")[0]?.data?.["text/plain"];

async function ok(code: string): Promise<Run> {
  const r = await run(code);
  assert.equal(r.reply.status, "ok", `${code}\n→ ${JSON.stringify(r.reply)}`);
  return r;
}

describe("the m1 kernel through a Jupyter server", { timeout: 240_000 }, () => {
  before(async () => {
    server = await startJupyterServer();
    mkdirSync(join(server.root, "node_modules", "esm-only"), { recursive: true });
    writeFileSync(join(server.root, "node_modules", "esm-only", "package.json"), JSON.stringify({ name: "esm-only", type: "module", exports: { import: "./index.js" } }));
    writeFileSync(join(server.root, "node_modules", "esm-only", "index.js"), "export const answer = 42;\nexport default function shout(s) { return s.toUpperCase(); }\n");
    writeFileSync(join(server.root, "helper.ts"), "export function twice(n: number): number { return 2 * n; }\nexport interface Pair { a: number; b: string }\n");
    manager = new KernelManager({ serverSettings: server.settings });
    await manager.ready;
    kernel = await manager.startNew({ name: "m1" });
    await kernel.info;
  });

  after(async () => {
    await kernel?.shutdown().catch(() => {});
    manager?.dispose();
    await server?.stop();
  });

  test("kernel_info describes TypeScript truly", async () => {
    const info = await kernel.requestKernelInfo();
    const c = info!.content as KernelMessage.IInfoReply;
    assert.equal(c.status, "ok");
    assert.ok(Number(c.protocol_version) >= 5.3);
    assert.equal(c.implementation, "m1-workbench");
    const ts = JSON.parse(readFileSync(join(ROOT, "node_modules", "typescript", "package.json"), "utf8")).version;
    assert.deepEqual([c.language_info.name, c.language_info.version, c.language_info.file_extension, c.language_info.mimetype], ["typescript", ts, ".ts", "text/typescript"]);
  });

  test("execute: execute_input, results with counts, streams, errors", async () => {
    const a = await ok("const x: number = 41;\nconsole.log('out'); console.error('err');\nx + 1");
    const count = a.reply.execution_count;
    assert.equal(ofType(a, "execute_input")[0].execution_count, count);
    assert.equal(ofType(a, "execute_result")[0].execution_count, count);
    assert.equal(result(a), "42");
    assert.deepEqual(ofType(a, "stream").map((s) => [s.name, s.text]), [["stdout", "out\n"], ["stderr", "err\n"]]);

    const b = await run("function boom(): never { throw new RangeError('kaboom'); }\nboom();");
    assert.equal(b.reply.status, "error");
    assert.equal(b.reply.execution_count, (count as number) + 1);
    const e = ofType(b, "error")[0];
    assert.deepEqual([e.ename, e.evalue], ["RangeError", "kaboom"]);
    assert.ok(e.traceback.some((l: string) => /at boom \(In\[\d+\]:1:\d+\)/.test(l)), e.traceback.join("\n"));
    assert.ok(e.traceback.every((l: string) => !l.includes("kernel/")), "kernel frames are cut from tracebacks");
  });

  test("types persist across cells, const cells re-run, type errors are reported", async () => {
    await ok("interface Point { x: number; y: number }\nconst p: Point = { x: 1, y: 2 };");
    const bad = await run("const s: string = p.x;");
    assert.equal(bad.reply.status, "error");
    const e = ofType(bad, "error")[0];
    assert.equal(e.ename, "TSError");
    assert.match(e.evalue, /In\[\d+\]:1:7 - error TS2322: Type 'number' is not assignable to type 'string'/);
    const withExpressions = await run("const ue = 5;", { user_expressions: { doubled: "ue * 2", broken: "nope()" } });
    const ue = withExpressions.reply.status === "ok" ? (withExpressions.reply.user_expressions as Record<string, any>) : {};
    assert.deepEqual([ue.doubled?.status, ue.doubled?.data?.["text/plain"], ue.broken?.status, ue.broken?.ename], ["ok", "10", "error", "ReferenceError"]);
    const cell = "const q: Point = { x: p.y, y: 3 };\nq.x + q.y";
    assert.equal(result(await ok(cell)), "5");
    assert.equal(result(await ok(cell)), "5");
    await ok("let counter = 0;\nfunction bump() { counter++; }");
    assert.equal(result(await ok("bump(); bump();\ncounter")), "2");
  });

  test("top-level await, ESM-only packages, dynamic import, local .ts files, tslab cells, the engine", async () => {
    assert.equal(result(await ok("await new Promise((r) => setTimeout(r, 20));\n'later'")), "'later'");
    assert.equal(result(await ok("import shout, { answer } from 'esm-only';\nshout(`a${answer}`)")), "'A42'");
    assert.equal(result(await ok("const mod = await import('esm-only');\nmod.answer")), "42");
    assert.equal(result(await ok("import { twice, type Pair } from './helper.ts';\nconst pair: Pair = { a: twice(2), b: 'x' };\npair.a")), "4");
    const t = await ok("import * as tslab from 'tslab';\ntslab.display.html('<b>from tslab</b>');\ntslab.display.markdown('*md*');");
    assert.deepEqual(ofType(t, "display_data").map((d) => d.data), [{ "text/html": "<b>from tslab</b>" }, { "text/markdown": "*md*" }]);
    assert.equal(result(await ok("import { Tensor, Model } from 'm1-workbench';\ntypeof Model.load")), "'function'");
  });

  test("display_data, update_display_data by display_id, clear_output, rich bundles", async () => {
    const r = await ok(
      "const rich = { [Symbol.for('Jupyter.display')]() { return { 'text/html': '<i>rich</i>', 'text/plain': 'rich' }; } };\n" +
        "const h = display(rich);\nh.update(7);\nconst { clearOutput } = await import('m1-workbench/kernel');\nclearOutput(true);\nrich",
    );
    const shown = ofType(r, "display_data")[0];
    assert.deepEqual(shown.data, { "text/plain": "rich", "text/html": "<i>rich</i>" });
    const update = ofType(r, "update_display_data")[0];
    assert.equal(update.transient.display_id, shown.transient.display_id);
    assert.equal(update.data["text/plain"], "7");
    assert.deepEqual(ofType(r, "clear_output"), [{ wait: true }]);
    assert.equal(ofType(r, "execute_result")[0].data["text/html"], "<i>rich</i>");
  });

  test("complete, inspect and is_complete come from the TypeScript language service", async () => {
    await ok("const longVariableName = { alpha: 1, beta: 'b' };");
    const code = "longVariableName.al";
    const c = (await kernel.requestComplete({ code: "longVar", cursor_pos: 7 })).content as KernelMessage.ICompleteReplyMsg["content"] & { matches: string[]; cursor_start: number; cursor_end: number };
    assert.ok(c.matches.includes("longVariableName"), JSON.stringify(c.matches));
    assert.deepEqual([c.cursor_start, c.cursor_end], [0, 7]);
    const m = (await kernel.requestComplete({ code, cursor_pos: code.length })).content as KernelMessage.ICompleteReplyMsg["content"] & { matches: string[]; cursor_start: number; cursor_end: number };
    assert.deepEqual(m.matches, ["alpha"]);
    assert.equal(m.cursor_start, code.length - 2);
    const i = (await kernel.requestInspect({ code: "Math.max(1, 2)", cursor_pos: 6, detail_level: 0 })).content as KernelMessage.IInspectReply;
    assert.equal(i.status === "ok" && i.found, true);
    assert.match(String((i as { data: Record<string, string> }).data["text/plain"]), /max\(\.\.\.values: number\[\]\): number/);
    const status = async (code: string) => ((await kernel.requestIsComplete({ code })).content as { status: string }).status;
    assert.equal(await status("const x = 1;"), "complete");
    assert.equal(await status("function f() {"), "incomplete");
    assert.equal(await status("const = ;"), "invalid");
  });

  test("history", async () => {
    await ok("const remembered = 'history test';");
    const h = (await kernel.requestHistory({ hist_access_type: "tail", n: 3, output: false, raw: true })).content as { history: [number, number, string][] };
    assert.ok(h.history.some(([, , input]) => input === "const remembered = 'history test';"));
    const s = (await kernel.requestHistory({ hist_access_type: "search", pattern: "*history test*", output: false, raw: true, n: 10, unique: false })).content as { history: unknown[] };
    assert.equal(s.history.length, 1);
  });

  test("comms: open from the frontend, messages both ways, info, close; open from the kernel", async () => {
    await ok("const { comms } = await import('m1-workbench/kernel');\ncomms.registerTarget('echo', (comm, data) => { comm.onMsg = (d) => comm.send({ echo: d, opened: data }); });");
    const comm = kernel.createComm("echo");
    const echoed = new Promise<unknown>((resolve) => (comm.onMsg = (msg) => resolve(msg.content.data)));
    comm.open({ hello: 1 });
    comm.send({ x: 2 });
    assert.deepEqual(await echoed, { echo: { x: 2 }, opened: { hello: 1 } });
    const info = (await kernel.requestCommInfo({ target_name: "echo" })).content as { comms: Record<string, { target_name: string }> };
    assert.deepEqual(info.comms[comm.commId], { target_name: "echo" });
    await comm.close().done;
    const after = (await kernel.requestCommInfo({ target_name: "echo" })).content as { comms: Record<string, unknown> };
    assert.equal(after.comms[comm.commId], undefined);

    const opened = new Promise<unknown>((resolve) => kernel.registerCommTarget("from-kernel", (_c, msg) => resolve(msg.content.data)));
    await ok("comms.open('from-kernel', { hi: 'there' });");
    assert.deepEqual(await opened, { hi: "there" });
  });

  test("input_request on stdin", async () => {
    const r = await run("const { input } = await import('m1-workbench/kernel');\n(await input('name? ')).toUpperCase()", { allow_stdin: true }, (msg) => {
      assert.equal((msg.content as { prompt: string }).prompt, "name? ");
      kernel.sendInputReply({ status: "ok", value: "ada" }, msg.header as never);
    });
    assert.equal(r.reply.status, "ok");
    assert.equal(result(r), "'ADA'");
  });

  test("interrupt_request stops a running loop through the cell's signal; variables survive", async () => {
    await ok("const kept = { value: 42 };\nlet ticks = 0;");
    const future = run("while (!signal.aborted) { ticks++; await new Promise((r) => setTimeout(r, 5)); }\nsignal.throwIfAborted();");
    await new Promise((r) => setTimeout(r, 400));
    await kernel.interrupt();
    const r = await future;
    assert.equal(r.reply.status, "error");
    assert.equal(ofType(r, "error")[0].ename, "AbortError");
    assert.equal(result(await ok("ticks > 0 && kept.value")), "42");
  });

  test("interrupt_request stops a running generation; the model and variables survive", { skip: !existsSync(join(ROOT, "native", "build", "Release", "m1native.node")) && "native addon not built" }, async () => {
    await ok(`import { Model } from "m1-workbench";\nconst m = await Model.load(${JSON.stringify(TINY)});\nlet generated = 0;`);
    const future = run("for await (const t of m.generate([1, 2, 3], { maxNewTokens: 100000, stopTokens: [], signal })) generated++;");
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    await kernel.interrupt();
    const r = await future;
    assert.ok(Date.now() - t0 < 5000, "generation stops soon after the interrupt");
    assert.equal(r.reply.status, "error");
    assert.equal(ofType(r, "error")[0].ename, "AbortError");
    assert.equal(result(await ok("generated > 0")), "true");
    const again = await ok("const g = m.generate([1, 2, 3], { maxNewTokens: 3, stopTokens: [] });\n(await g.result()).ids.length");
    assert.equal(result(again), "3");
  });

  test("badly signed and malformed messages are rejected and logged; the kernel stays up", async () => {
    const file = readdirSync(server.runtimeDir).find((f) => f === `kernel-${kernel.id}.json`);
    assert.ok(file, "the server wrote the kernel's connection file");
    const info = JSON.parse(readFileSync(join(server.runtimeDir, file), "utf8")) as ConnectionInfo;
    const shell = new zmq.Dealer({ routingId: "intruder", linger: 0, receiveTimeout: 1500 });
    shell.connect(address(info, "shell"));
    try {
      const request = (signer: Signer) => encode(signer, { header: newHeader("kernel_info_request", "intruder"), parent_header: {}, metadata: {}, content: {} });
      await shell.send(request(new Signer("not-the-key")));
      await shell.send(["<IDS|MSG>", "sig", "{not json"]);
      await assert.rejects(shell.receive(), /timed out|EAGAIN/i, "no reply to a badly signed message");
      await shell.send(request(new Signer(info.key)));
      const reply = decode(new Signer(info.key), await shell.receive());
      assert.equal(reply.header.msg_type, "kernel_info_reply");
      await shell.send(encode(new Signer(info.key), { header: newHeader("no_such_request", "intruder"), parent_header: {}, metadata: {}, content: {} }));
      const unknown = decode(new Signer(info.key), await shell.receive());
      assert.deepEqual([unknown.header.msg_type, unknown.content.status, unknown.content.ename], ["no_such_reply", "error", "UnknownMessageType"]);
    } finally {
      shell.close();
    }
    assert.match(server.log(), /rejected a message: bad signature/);
    assert.match(server.log(), /rejected a message: /);
    assert.equal(result(await ok("1 + 1")), "2");
  });

  test("a promise a cell leaves rejected fails that cell with the rejection; the kernel and its variables live on", async () => {
    await ok("const survivor = 41;");
    const r = await run("Promise.reject(new Error('floating'));\n'after'");
    assert.equal(r.reply.status, "error");
    const error = ofType(r, "error")[0];
    assert.equal(error.ename, "UnhandledPromiseRejection");
    assert.match(error.evalue, /a promise was rejected and nothing handled it: Error: floating/);
    await ok("setTimeout(() => void Promise.reject(new Error('after the cell')), 10);");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(result(await ok("survivor + 1")), "42");
    assert.match(server.log(), /UnhandledPromiseRejection: a promise was rejected and nothing handled it: Error: after the cell/);
  });

  test("execute_request whose code is not a string, or whose user_expressions is not an object, is refused uncounted", async () => {
    const count = (await ok("1")).reply.execution_count;
    const cases: [unknown, unknown, RegExp][] = [
      [null, {}, /content\.code must be a string, got null/],
      [123, {}, /content\.code must be a string, got number/],
      ["1", "notadict", /content\.user_expressions must be an object of name: expression, got string/],
      ["1", { a: 5 }, /user_expressions\["a"\] must be a string, got number/],
    ];
    for (const [code, userExpressions, message] of cases) {
      const r = await run(code as string, { user_expressions: userExpressions as never });
      assert.equal(r.reply.status, "error", JSON.stringify(code));
      assert.equal((r.reply as { ename?: string }).ename, "InvalidRequest");
      assert.match((r.reply as { evalue?: string }).evalue!, message);
    }
    assert.equal((await ok("2")).reply.execution_count, count! + 1);
  });

  test("stop_on_error aborts the executes queued behind a failing cell", async () => {
    const failing = run("await new Promise((r) => setTimeout(r, 300));\nthrow new Error('first fails');", { stop_on_error: true });
    const queued = run("'never runs'");
    assert.equal((await failing).reply.status, "error");
    assert.equal((await queued).reply.status, "aborted");
    assert.equal(result(await ok("'runs again'")), "'runs again'");
  });

  test("restart (shutdown_request with restart) gives a fresh kernel", async () => {
    await kernel.restart();
    await kernel.info;
    const r = await ok("// @ts-nocheck\ntypeof kept");
    assert.equal(result(r), "'undefined'");
    assert.equal(r.reply.execution_count, 1);
  });
});
