/** RL and SFT on the engine (docs/rl.md): objectives, rewards, rollouts, the training loop, metrics. */
export { objective, groupAdvantages, informativeGroups, OBJECTIVES, DEFAULT_CLIP, type ObjectiveName, type ClipRange, type ScoredSequence, type ObjectiveResult } from "./objectives.ts";
export { exactAnswer, answerDigitCredit, withLengthPenalty, answerAfterThought, type Reward, type Completion } from "./rewards.ts";
export { additionProblem, additionProblems, additionPrompt, randomOperands, operand, scratchpadCompletion, problemOperands, parseFamily, familyProblems, type Problem } from "./tasks.ts";
export { rollout, rolloutStopTokens, repetitive, completionLogprobs, completionProbability, type Rollout, type RolloutOptions, type RepetitionRule } from "./rollout.ts";
export { TrainingLoop, stepRng, RATIO_BINS, type Policy, type TrainConfig, type StepMetrics } from "./train.ts";
export { metricsTable, ratioTable, droppedTokensTable, metricFigure } from "./metrics.ts";
export { masterModel, precisionComparison, MOVED_PROBABILITY, type PrecisionComparison, type PrecisionAgreement } from "./precision.ts";
export { parseStages, staged, stageAt, DEFAULT_RL_STAGES, SFT_RECIPES, SFT_OPTIMIZER, type Stage } from "./recipes.ts";
export { EnginePolicy } from "./engine-policy.ts";
