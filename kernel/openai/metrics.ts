// GET /metrics of `m1 serve`: the server's state in the Prometheus text format, as vLLM and SGLang expose theirs,
// so that a load generator (benchmarks/serving/load.ts) or a scraper sees how full the batch runs and what the
// server's CPU time is, apart from the client's.
import type { BatchScheduler } from "./scheduler.ts";

/** Upper bounds of the batch-size histogram's buckets: powers of two up to the largest batch, and that batch. */
function bucketBounds(maxBatch: number): number[] {
  const bounds: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) bounds.push(b);
  return [...bounds, maxBatch];
}

export function metricsText(scheduler: BatchScheduler): string {
  const { running, waiting } = scheduler.load;
  const sizes = scheduler.stepsBySize;
  const count = (upTo: number) => sizes.slice(0, upTo + 1).reduce((a, b) => a + b, 0);
  const steps = count(sizes.length);
  const sum = sizes.reduce((a, n, b) => a + n * b, 0);
  const cpu = process.cpuUsage();
  return [
    "# HELP m1_requests_running Requests decoding in the batch.",
    "# TYPE m1_requests_running gauge",
    `m1_requests_running ${running}`,
    "# HELP m1_requests_waiting Requests waiting to join the batch.",
    "# TYPE m1_requests_waiting gauge",
    `m1_requests_waiting ${waiting}`,
    "# HELP m1_batch_size Sequences in each batch step of a lane (the sum is the tokens the batch steps chose).",
    "# TYPE m1_batch_size histogram",
    ...bucketBounds(scheduler.maxBatch).map((le) => `m1_batch_size_bucket{le="${le}"} ${count(le)}`),
    `m1_batch_size_bucket{le="+Inf"} ${steps}`,
    `m1_batch_size_sum ${sum}`,
    `m1_batch_size_count ${steps}`,
    "# HELP m1_batch_size_max The most sequences in one batch step of a lane since the server started.",
    "# TYPE m1_batch_size_max gauge",
    `m1_batch_size_max ${scheduler.peakBatch}`,
    "# HELP m1_prefill_prompts_total Prompts prefilled into the batch.",
    "# TYPE m1_prefill_prompts_total counter",
    `m1_prefill_prompts_total ${scheduler.prefilled.prompts}`,
    "# HELP m1_prefill_joins_total Prefills that brought prompts into the batch (short prompts waiting together join in one).",
    "# TYPE m1_prefill_joins_total counter",
    `m1_prefill_joins_total ${scheduler.prefilled.joins}`,
    "# HELP m1_lanes Batches stepping side by side.",
    "# TYPE m1_lanes gauge",
    `m1_lanes ${scheduler.laneCount}`,
    "# HELP m1_passes_total Native passes of the lanes' batches, by where they ran (on a thread of their own while another lane had work; on the event loop's thread over all cores otherwise).",
    "# TYPE m1_passes_total counter",
    `m1_passes_total{thread="own"} ${scheduler.passes.ownThread}`,
    `m1_passes_total{thread="event_loop"} ${scheduler.passes.all - scheduler.passes.ownThread}`,
    "# HELP process_cpu_seconds_total User and system CPU time of the server process, all threads.",
    "# TYPE process_cpu_seconds_total counter",
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
  ].join("\n") + "\n";
}
