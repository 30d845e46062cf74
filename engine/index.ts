/** m1-workbench engine: what a notebook or a script imports. */
export { Model, type LoadOptions, type ForwardOptions, type ForwardResult } from "./model.ts";
export { Generation, type GenerateOptions, type GeneratedToken, type GenerationResult, type StopReason } from "./generate.ts";
export { Sampler, Rng, argmax, type SamplingOptions } from "./sampling.ts";
export { ModelCache, KvCache } from "./cache.ts";
export { HookSet, ActivationCache, hookNames, type HookFn, type HookContext, type HookFilter } from "./hooks.ts";
export { Checkpoint, type TensorInfo } from "./checkpoint.ts";
export { SafetensorsFile, writeSafetensors } from "./safetensors.ts";
export { loadConfig, parseConfig, slopes, type ModelConfig, type LayerType } from "./config.ts";
export { Tokenizer } from "./tokenizer.ts";
export { Tensor, castTensor, type DType } from "./tensor.ts";
export { M1Error, CheckpointError, ConfigError, TokenizerError, InputError } from "./errors.ts";
export * as plan from "./plan.ts";
