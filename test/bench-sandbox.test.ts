// The code sandbox and the LiveCodeBench grader on right, wrong and hostile programs: infinite loops, fork bombs,
// memory hogs, floods of output, writes outside the sandbox's /tmp and network attempts all fail their test and
// leave the host as it was (no file written, no connection made, no process left).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import net from "node:net";
import { join } from "node:path";
import { FIXTURES } from "./helpers.ts";
import { runSandboxed, sandboxUnavailable } from "../benchmarks/eval/sandbox.ts";
import { loadPublished } from "../benchmarks/eval/published/index.ts";

const skip = sandboxUnavailable() ?? false;
const python = (code: string, stdin = "", timeMs = 10_000) => runSandboxed({ "main.py": code }, ["python3", "-I", "main.py"], stdin, { timeMs });
const block = (code: string) => "Here it is:\n```python\n" + code + "\n```";
const nobodyProcesses = () => spawnSync("ps", ["-u", "nobody", "-o", "pid="]).stdout.toString().trim().split("\n").filter(Boolean).length;

test("the sandbox runs a program with its input and returns its output", { skip }, async () => {
  const r = await python("import sys\nprint(sys.stdin.read().upper(), end='')", "abc");
  assert.deepEqual(r, { exitCode: 0, signal: null, stdout: "ABC", stderr: "", timedOut: false, outputOverflow: false });
});

test("hostile programs are stopped and leave the host unharmed", { skip }, async () => {
  const before = nobodyProcesses();
  const hostFile = join("/tmp", `m1-escape-${process.pid}`);
  const writes = await python(`import os\nfor p in ['${hostFile}', '/var/tmp/x', '/dev/shm/x', '/run/lock/x', '/root/x', '${FIXTURES}/x']:\n  try:\n    open(p, 'w').write('x'); print('wrote', p)\n  except OSError:\n    print('refused', p)`);
  assert.equal(writes.stdout.split("\n").filter((l) => l.startsWith("wrote")).join(), `wrote ${hostFile}`); // its own /tmp only
  assert.ok(!existsSync(hostFile) && !existsSync(join(FIXTURES, "x")), "nothing written on the host");

  let connections = 0;
  const server = net.createServer((s) => (connections++, s.destroy()));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const network = await python(`import socket\nfor host in ['127.0.0.1', '1.1.1.1']:\n  try:\n    socket.create_connection((host, ${port}), timeout=2); print('connected', host)\n  except OSError as e:\n    print('refused', host)`);
  server.close();
  assert.equal(network.stdout, "refused 127.0.0.1\nrefused 1.1.1.1\n");
  assert.equal(connections, 0);

  const loop = await python("while True: pass", "", 1500);
  assert.equal(loop.timedOut, true);
  const bomb = await python("import os\nwhile True:\n  try: os.fork()\n  except OSError: pass", "", 2000);
  assert.equal(bomb.timedOut, true);
  const hog = await python("x = bytearray(4 * 2**30)");
  assert.notEqual(hog.exitCode, 0);
  assert.match(hog.stderr, /MemoryError/);
  const flood = await python("while True: print('y' * 4096)");
  assert.equal(flood.outputOverflow, true);
  const disk = await python("f = open('big', 'wb')\nfor i in range(64): f.write(b'x' * 2**20)");
  assert.notEqual(disk.exitCode, 0);
  assert.equal(nobodyProcesses(), before, "no process left behind");
});

test("LiveCodeBench grading: stdin and functional problems, public then private tests; bad code fails", { skip }, async () => {
  const t = await loadPublished("livecodebench", join(FIXTURES, "published", "livecodebench.jsonl"));
  const [stdinItem, functional] = t.items;
  const g = (answer: string, item = stdinItem) => t.grader.grade(answer, item);
  assert.deepEqual(await g(block("a, b = map(int, input().split())\nprint(a + b)")), { score: 1, extracted: "a, b = map(int, input().split())\nprint(a + b)\n", detail: "3/3 tests passed" });
  assert.match((await g(block("a, b = map(int, input().split())\nprint(a + b if a < 100 else 0)"))).detail!, /test 3\/3: wrong answer/); // a private test
  assert.match((await g(block("raise SystemExit(3)"))).detail!, /exit 3/);
  assert.equal((await g("I would loop over the numbers.")).detail, "no ```python code block in the answer");
  assert.equal((await g(block("import os\nos.system('rm -rf /tmp/*')\nwhile True: os.fork()"))).score, 0);
  const solution = "class Solution:\n    def addK(self, nums, k):\n        return [x + k for x in nums]";
  assert.equal((await g(block(solution), functional)).score, 1);
  assert.equal((await g(block(solution.replace("x + k", "x - k")), functional)).score, 0);
  // printing a fake result does not pass: the result is read after a marker the program does not know
  assert.equal((await g(block("print('[2, 3]')\nclass Solution:\n    def addK(self, nums, k):\n        return None"), functional)).score, 0);
});
