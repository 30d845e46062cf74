// Load generator for `m1 serve`: starts the server as a child process, sends the same set of completion requests
// at 1, 4, 16 and 64 in flight, and reports throughput (generated tokens per second of wall time) and request
// latency percentiles per level, the speedup over one at a time, and the server's largest batch.
//   node --import tsx benchmarks/serving/load.ts [--model mini-80k] [--requests 64] [--max-tokens 64] [--levels 1,4,16,64] [--out benchmarks/serving/RESULTS.md]
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { additionPrompt } from "./prompts.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "mini-80k" }, requests: { type: "string", default: "64" }, "max-tokens": { type: "string", default: "64" },
  levels: { type: "string", default: "1,4,16,64" }, out: { type: "string" },
} });
const total = Number(values.requests);
const maxTokens = Number(values["max-tokens"]);
const levels = values.levels!.split(",").map(Number);

const m1 = fileURLToPath(new URL("../../kernel/bin/m1.mjs", import.meta.url));
const child = spawn(process.execPath, [m1, "serve", values.model!, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise<string>((resolve, reject) => {
  let out = "";
  child.stdout!.on("data", (d) => {
    out += d;
    const m = /(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out);
    if (m) resolve(m[1]);
  });
  child.once("exit", (code) => reject(new Error(`m1 serve exited (${code})`)));
});

/** Request i: a 6-digit addition for the demo pair, sampled at temperature 1 with its own seed. */
function body(i: number) {
  return { model: values.model, prompt: additionPrompt(i), max_tokens: maxTokens, temperature: 1, top_p: 0.95, seed: i };
}

interface Level { concurrency: number; seconds: number; tokens: number; tokensPerSecond: number; p50: number; p90: number; p99: number }

async function run(concurrency: number): Promise<Level> {
  const latencies: number[] = [];
  let tokens = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const s = performance.now();
      const res = await fetch(`${url}/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(i)) });
      const json = (await res.json()) as { usage: { completion_tokens: number } };
      if (!res.ok) throw new Error(`request ${i}: HTTP ${res.status}: ${JSON.stringify(json)}`);
      tokens += json.usage.completion_tokens;
      latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((x, y) => x - y);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] / 1000;
  return { concurrency, seconds, tokens, tokensPerSecond: tokens / seconds, p50: q(0.5), p90: q(0.9), p99: q(0.99) };
}

try {
  const loadBefore = os.loadavg()[0];
  await run(4); // warm-up (weights into cache, JIT)
  const results: Level[] = [];
  for (const c of levels) {
    results.push(await run(c));
    process.stderr.write(`concurrency ${c}: ${results.at(-1)!.tokensPerSecond.toFixed(0)} tok/s\n`);
  }
  const base = results.find((r) => r.concurrency === 1)?.tokensPerSecond ?? results[0].tokensPerSecond;
  const table = [
    `${total} completion requests of up to ${maxTokens} tokens (6-digit additions, temperature 1, top-p 0.95, one seed per request) to \`m1 serve ${values.model}\``,
    `${os.availableParallelism()} CPUs, load average ${loadBefore.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end`,
    "",
    "| in flight | wall s | tokens | tokens/s | × one at a time | latency p50 s | p90 s | p99 s |",
    "|---|---|---|---|---|---|---|---|",
    ...results.map((r) => `| ${r.concurrency} | ${r.seconds.toFixed(2)} | ${r.tokens} | ${r.tokensPerSecond.toFixed(0)} | ${(r.tokensPerSecond / base).toFixed(2)} | ${r.p50.toFixed(3)} | ${r.p90.toFixed(3)} | ${r.p99.toFixed(3)} |`),
  ].join("\n") + "\n";
  process.stdout.write(table);
  if (values.out) fs.writeFileSync(values.out, table);
} finally {
  child.kill("SIGTERM");
}
