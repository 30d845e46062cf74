// Load generator for an OpenAI-compatible server: `m1 serve` started here as a child process, or any --endpoint,
// or (--direct) the server's scheduler and completion code in this process without HTTP, which separates what
// HTTP costs from what batching gives. It sends the same completion requests at each level of requests in flight,
// in rounds that visit the levels in turn (forward, then backward), and reports per level: generated tokens per
// second of wall time (median round, and best), the ratio to one at a time, request latency percentiles over all
// rounds and, from the server's /metrics when it has one (m1 serve does), the mean and largest batch of its steps
// and the prompts per prefill; the server's CPU time per token apart from the client's (the client runs on the
// same machine). Request i gets the same prompt, sampling and seed at every level, so it must get the same text:
// the report says whether it did. A local checkpoint without a tokenizer (`m1 make-checkpoint`) gets its prompts as
// token ids (./prompts.ts) and answers in ids, which are then what must be the same.
//   node --import tsx benchmarks/serving/load.ts [--model mini-80k (or a checkpoint directory)] [--requests 256] [--max-tokens 64] [--levels 1,4,16,64]
//     [--rounds 3] [--lanes N (m1 serve's)] [--direct | --endpoint URL (a running server; --model is its served name) [--server-pid PID]] [--out FILE]
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { benchPrompt, idVocabOf, ID_PROMPT_TOKENS } from "./prompts.ts";
import { JsonConnection } from "./json-connection.ts";
import { loadLocalModel, resolveCheckpoint } from "../registry.ts";
import { BatchScheduler } from "../../kernel/openai/scheduler.ts";
import { completeWithEngine } from "../../kernel/openai/completion.ts";
import { metricsText } from "../../kernel/openai/metrics.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "mini-80k" }, requests: { type: "string", default: "256" }, "max-tokens": { type: "string", default: "64" },
  levels: { type: "string", default: "1,4,16,64" }, rounds: { type: "string", default: "3" }, direct: { type: "boolean", default: false },
  endpoint: { type: "string" }, "server-pid": { type: "string" }, out: { type: "string" }, lanes: { type: "string" },
} });
const total = positive("requests"), maxTokens = positive("max-tokens"), rounds = positive("rounds");
const levels = values.levels!.split(",").map((v) => positive("levels", v));
if (values.direct && values.endpoint) throw new Error("--direct runs the scheduler in this process: it takes no --endpoint");
if (values["server-pid"] && !values.endpoint) throw new Error("--server-pid names the process of an --endpoint");
if (values.lanes && values.endpoint) throw new Error("--lanes is m1 serve's: it takes no --endpoint");
/** m1 serve's --lanes (default: its own) */
const lanes = values.lanes === undefined ? undefined : positive("lanes");
/** the vocabulary of a local checkpoint without a tokenizer, whose prompts and answers are token ids; else null */
const idVocab = values.endpoint ? null : idVocabOf(values.model!);
const prompt = (i: number) => benchPrompt(i, idVocab);
/** the name the server serves the model under: a checkpoint directory's is its folder's name */
const servedName = values.endpoint ? values.model! : resolveCheckpoint(values.model!).name;

function positive(flag: string, text = values[flag as keyof typeof values] as string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${flag} takes whole numbers >= 1, got "${text}"`);
  return n;
}

/** Where the requests go: send(i) → the completion's tokens and text (its ids, joined, for a checkpoint without a tokenizer); the server's metrics and CPU seconds so far. */
interface Target {
  label: string;
  send(i: number): Promise<{ tokens: number; text: string }>;
  metrics(): Promise<Map<string, number> | null>;
  /** CPU seconds of the server so far (user and system, all threads), or null where unknown */
  cpu(metrics: Map<string, number> | null): number | null;
  /** whether the client's CPU time is the server's too (one process) */
  sameProcess: boolean;
  close(): void;
}

/** Prometheus text → metric (name with labels) → value. */
function parseMetrics(text: string): Map<string, number> {
  const metrics = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([^#\s][^\s]*)\s+(\S+)$/.exec(line);
    if (m) metrics.set(m[1], Number(m[2]));
  }
  return metrics;
}

/** Clock ticks per second of /proc/PID/stat's CPU times. */
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString());

/** CPU seconds of a process on this machine so far: utime and stime, fields 14 and 15 of /proc/PID/stat. */
function processCpu(pid: number | string): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** An OpenAI-compatible server at `url` (its /v1), whose process is `pid` when it runs on this machine. */
function httpTarget(label: string, url: string, pid: number | string | undefined, close = () => {}): Target {
  const completions = new URL(`${url}/completions`);
  if (completions.protocol !== "http:") throw new Error(`--endpoint must be an http:// URL, got ${url}`);
  /** connections not carrying a request now: each request takes one (or opens one), so there are as many as requests in flight */
  const idle: JsonConnection[] = [];
  const all: JsonConnection[] = [];
  return {
    label, sameProcess: false,
    close: () => {
      for (const c of all) c.close();
      close();
    },
    async send(i) {
      const body = { model: servedName, prompt: prompt(i), max_tokens: maxTokens, temperature: 1, top_p: 0.95, seed: i };
      const connection = idle.pop() ?? all[all.push(new JsonConnection(completions)) - 1];
      const { status, json } = await connection.post(body);
      idle.push(connection);
      if (status !== 200) throw new Error(`request ${i}: HTTP ${status}: ${JSON.stringify(json)}`);
      const choice = json.choices[0];
      return { tokens: json.usage.completion_tokens, text: choice.token_ids?.join(" ") ?? choice.text };
    },
    async metrics() {
      const res = await fetch(new URL("/metrics", url)).catch(() => null);
      return res?.ok ? parseMetrics(await res.text()) : null;
    },
    cpu: (metrics) => (pid !== undefined ? processCpu(pid) : metrics?.get("process_cpu_seconds_total") ?? null),
  };
}

/** Starts `m1 serve` as a child process on a free port. */
async function childServer(): Promise<Target> {
  const m1 = fileURLToPath(new URL("../../kernel/bin/m1.mjs", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [m1, "serve", values.model!, "--port", "0", ...(lanes === undefined ? [] : ["--lanes", String(lanes)])], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`m1 serve exited (${code})`)));
  });
  return httpTarget(`m1 serve ${values.model}`, url, child.pid, () => child.kill("SIGTERM"));
}

/** The server's scheduler and completion code in this process: the same requests, no HTTP. */
async function directTarget(): Promise<Target> {
  const { model } = await loadLocalModel(values.model!);
  const scheduler = new BatchScheduler(model, 64, lanes);
  return {
    label: `${values.model} through m1 serve's scheduler in this process, without HTTP`, sameProcess: true, close: () => {},
    async send(i) {
      const c = await completeWithEngine(model, { prompt: prompt(i), maxTokens, temperature: 1, topP: 0.95, seed: i }, scheduler);
      return { tokens: c.completionTokens, text: c.tokenIds?.join(" ") ?? c.text };
    },
    metrics: async () => parseMetrics(metricsText(scheduler)),
    cpu: () => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1e6;
    },
  };
}

/** What the server's metrics say of one run: its batch steps and its prefills. */
interface ServerShare { steps: number; meanBatch: number; largestBatch: string; prompts: number; joins: number }

function serverShare(before: Map<string, number>, after: Map<string, number>): ServerShare {
  const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  const steps = delta("m1_batch_size_count");
  // the largest batch of the run lies in the first bucket that holds all of its steps (bounds are powers of two)
  const bounds = [...after.keys()].map((k) => /^m1_batch_size_bucket\{le="(\d+)"\}$/.exec(k)?.[1]).filter((b) => b !== undefined).map(Number);
  let lower = 0, largest = "-";
  for (const le of bounds) {
    if (steps > 0 && delta(`m1_batch_size_bucket{le="${le}"}`) === steps) {
      largest = lower + 1 === le ? String(le) : `${lower + 1}-${le}`;
      break;
    }
    lower = le;
  }
  return {
    steps, meanBatch: steps ? delta("m1_batch_size_sum") / steps : 0, largestBatch: largest,
    prompts: delta("m1_prefill_prompts_total"), joins: delta("m1_prefill_joins_total"),
  };
}

interface Run { seconds: number; tokens: number; latencies: number[]; clientCpuSeconds: number; serverCpuSeconds: number | null; server: ServerShare | null }

/** Every request once with `concurrency` in flight (each client sends its next request when the last returns). */
async function run(target: Target, concurrency: number, count: number, texts: (string | undefined)[], mismatches: Set<number>): Promise<Run> {
  const latencies: number[] = [];
  let tokens = 0, next = 0;
  const before = await target.metrics();
  const cpu0 = target.cpu(before);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const client = async () => {
    while (next < count) {
      const i = next++;
      const s = performance.now();
      const reply = await target.send(i);
      latencies.push((performance.now() - s) / 1000);
      tokens += reply.tokens;
      if (texts[i] === undefined) texts[i] = reply.text;
      else if (texts[i] !== reply.text) mismatches.add(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const after = await target.metrics();
  const cpu1 = target.cpu(after);
  return {
    seconds, tokens, latencies, clientCpuSeconds: (c.user + c.system) / 1e6, serverCpuSeconds: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null,
    server: before && after ? serverShare(before, after) : null,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** The p-quantile by nearest rank. */
const quantile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];

const target = values.direct ? await directTarget()
  : values.endpoint ? httpTarget(values.endpoint, values.endpoint.replace(/\/+$/, ""), values["server-pid"])
  : await childServer();
try {
  const loadBefore = os.loadavg();
  const texts: (string | undefined)[] = [];
  const mismatches = new Set<number>();
  // warm-up (weights into cache, JIT, the batch's buffers at the largest size): not reported
  await run(target, Math.max(...levels), Math.min(total, 2 * Math.max(...levels)), [], new Set());
  const laneCount = (await target.metrics())?.get("m1_lanes");
  const runs = new Map<number, Run[]>(levels.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of r % 2 ? [...levels].reverse() : levels) {
      const x = await run(target, c, total, texts, mismatches);
      runs.get(c)!.push(x);
      process.stderr.write(`round ${r + 1}, ${c} in flight: ${(x.tokens / x.seconds).toFixed(0)} tokens/s\n`);
    }
  }
  const loadAfter = os.loadavg();
  const rate = (x: Run) => x.tokens / x.seconds;
  const output = idVocab === null ? "text" : "tokens";
  const base = median(runs.get(levels.includes(1) ? 1 : levels[0])!.map(rate));
  const perToken = (seconds: number[], tokens: number[]) => ((seconds.reduce((a, b) => a + b, 0) / tokens.reduce((a, b) => a + b, 0)) * 1e6).toFixed(0);
  const rows = levels.map((c) => {
    const xs = runs.get(c)!;
    const rates = xs.map(rate);
    const lat = xs.flatMap((x) => x.latencies).sort((a, b) => a - b);
    const tokens = xs.map((x) => x.tokens);
    const shares = xs.map((x) => x.server).filter((s): s is ServerShare => s !== null);
    const sum = (f: (s: ServerShare) => number) => shares.reduce((a, s) => a + f(s), 0);
    const batchCells = shares.length === xs.length
      ? [(sum((s) => s.meanBatch * s.steps) / Math.max(1, sum((s) => s.steps))).toFixed(1),
         shares.map((s) => s.largestBatch).sort((a, b) => parseInt(b) - parseInt(a))[0], (sum((s) => s.prompts) / Math.max(1, sum((s) => s.joins))).toFixed(1)]
      : ["-", "-", "-"];
    const cpu = xs.map((x) => x.serverCpuSeconds);
    const serverCpu = cpu.every((s) => s !== null) ? perToken(cpu as number[], tokens) : "-";
    const clientCpu = target.sameProcess ? "(in the server's)" : perToken(xs.map((x) => x.clientCpuSeconds), tokens);
    return `| ${c} | ${median(rates).toFixed(0)} | ${Math.max(...rates).toFixed(0)} | ${(median(rates) / base).toFixed(2)} | ` +
      `${[0.5, 0.9, 0.99].map((p) => quantile(lat, p).toFixed(3)).join(" / ")} | ${batchCells.join(" | ")} | ${serverCpu} | ${clientCpu} |`;
  });
  const table = [
    `${total} completion requests of up to ${maxTokens} tokens (${idVocab === null ? "6-digit additions" : `${ID_PROMPT_TOKENS} seeded random token ids`}, temperature 1, top-p 0.95, one seed per request; ` +
      `${runs.get(levels[0])![0].tokens} tokens generated per level and round) to ${target.label}${laneCount ? ` (${laneCount} lane${laneCount > 1 ? "s: batches are each lane's" : ""})` : ""}, ${rounds} rounds visiting the levels in turn`,
    `${os.availableParallelism()} CPUs, load average (1, 5, 15 min) ${loadBefore.map((l) => l.toFixed(2)).join(", ")} at the start, ` +
      `${loadAfter.map((l) => l.toFixed(2)).join(", ")} at the end`,
    mismatches.size ? `**${mismatches.size} requests got another ${output} at some level than at the first (requests ${[...mismatches].slice(0, 8).join(", ")}…)**`
      : `every request got the same ${output} at every level and in every round`,
    "",
    "| in flight | tokens/s (median round) | best round | × one at a time (medians) | latency p50 / p90 / p99 s | mean batch | largest batch | prompts per prefill | server CPU µs per token | client CPU µs per token |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n") + "\n";
  process.stdout.write(table);
  if (values.out) fs.writeFileSync(values.out, table);
  // m1 serve promises each request the tokens it gets alone; other servers may not batch bit-exactly
  if (mismatches.size && !values.endpoint) process.exitCode = 1;
} finally {
  target.close();
}
