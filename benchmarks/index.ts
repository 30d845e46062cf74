/** `m1-workbench/benchmarks`: the eval suites and their backends, the paper's tables as data, and the efficiency model,
 *  for notebooks (in any folder) and scripts. */
export { runTask, type RunOptions } from "./eval/runner.ts";
export { RunResult } from "./eval/results.ts";
export { ResultStore } from "./eval/store.ts";
export { NotebookProgress, terminalProgress, type ProgressSink } from "./eval/progress.ts";
export { LocalBackend } from "./eval/backends/local.ts";
export { OpenAIBackend, type OpenAIBackendOptions } from "./eval/backends/openai.ts";
export { builtinSuite, SUITES, type SuiteParams } from "./eval/suites/index.ts";
export { arithmeticSuite } from "./eval/suites/arithmetic.ts";
export { loadTaskFile } from "./eval/task-file.ts";
export { importLmEvalTask } from "./eval/lm-eval.ts";
export type { Task, EvalItem, Grader, Grade, Backend, Completion, CompletionRequest } from "./eval/types.ts";
export { table1, table2, PaperTable } from "./paper/tables.ts";
export { table1Data, table2Data, figure1Data, miniArithmeticData } from "./paper/data.ts";
export { EfficiencyReport } from "./efficiency/report.ts";
export { CostModel } from "./efficiency/cost-model.ts";
export { minimaxM1, figure1Architectures } from "./efficiency/architectures.ts";
export { measureContextScaling } from "./efficiency/measured.ts";
export { tableRows, columnsTable } from "./arrow.ts";
export { loadPublished, PUBLISHED, PUBLISHED_NAMES, type PublishedLoadOptions } from "./eval/published/index.ts";
export { readRecords } from "./eval/published/records.ts";
export { SYSTEM_PROMPTS, paperProtocol } from "./eval/published/protocol.ts";
export { runSandboxed, sandboxUnavailable, type SandboxLimits } from "./eval/sandbox.ts";
export { scoreStats, passAtK, type ScoreStats } from "./eval/stats.ts";
export { exactMatch } from "./eval/graders/exact.ts";
export { mathGrader } from "./eval/graders/math.ts";
