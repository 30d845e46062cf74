// `m1 serve` as a child process on 127.0.0.1 for tests over real HTTP, and the SSE events of a streamed answer.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "./helpers.ts";

export interface Served { url: string; child: ChildProcess; stderr: () => string }

export async function startServer(args: string[]): Promise<Served> {
  const entry = pathToFileURL(join(ROOT, "kernel", "cli", "serve.ts")).href;
  const code = `import { serve } from ${JSON.stringify(entry)}; process.exitCode = await serve(${JSON.stringify(args)});`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once("exit", (codeOrNull) => reject(new Error(`m1 serve exited (${codeOrNull}) before listening: ${err}`)));
  });
  return { url, child, stderr: () => err };
}

export async function stop(s: Served): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode;
  const exited = new Promise<number | null>((resolve) => s.child.once("exit", resolve));
  s.child.kill("SIGTERM");
  return exited;
}

/** The JSON events of an SSE answer, checked to end with "data: [DONE]". */
export async function events(res: Response): Promise<Record<string, any>[]> {
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await res.text();
  const datas = text.split("\n\n").filter(Boolean).map((block) => {
    assert.ok(block.startsWith("data: "), block);
    return block.slice(6);
  });
  assert.equal(datas.at(-1), "[DONE]");
  return datas.slice(0, -1).map((d) => JSON.parse(d));
}
