// The paper's evaluation protocol (arXiv 2506.13585 §6.1 and the MiniMax-M1 README §3): sampling at temperature
// 1.0 and top-p 0.95 for every task, AIME and GPQA-Diamond averaged over 32 samples per problem, LiveCodeBench
// (and FullStackBench) over 16, and MiniMax's recommended system prompts.
import type { Protocol } from "../types.ts";

/**
 * MiniMax's recommended system prompts, quoted from the MiniMax-M1 README ("Recommendations for MiniMax-M1 Model
 * Usage", github.com/MiniMax-AI/MiniMax-M1, Apache License 2.0).
 */
export const SYSTEM_PROMPTS = {
  general: "You are a helpful assistant.",
  math: "Please reason step by step, and put your final answer within \\boxed{}.",
  webDevelopment:
    "You are a web development engineer, writing web pages according to the instructions below. You are a powerful code editing assistant capable of writing code and creating artifacts in conversations with users, or modifying and updating existing artifacts as requested by users. \n" +
    "All code is written in a single code block to form a complete code file for display, without separating HTML and JavaScript code. An artifact refers to a runnable complete code snippet, you prefer to integrate and output such complete runnable code rather than breaking it down into several code blocks. For certain types of code, they can render graphical interfaces in a UI window. After generation, please check the code execution again to ensure there are no errors in the output.\n" +
    "Output only the HTML, without any additional descriptive text. Make the UI looks modern and beautiful.",
  /** the system prompt of the TAU-bench runs (README, "TAU-bench methodology") */
  tauBench:
    "- In each round, you need to carefully examine the tools provided to you to determine if any can be used.\n" +
    "- You must adhere to all of the policies. Pay attention to the details in the terms. Solutions for most situations can be found within these policies.",
} as const;

/** Sampling of every Table 2 run. */
const SAMPLING = { temperature: 1.0, topP: 0.95 };

/** The protocol of a task: samples per item (the paper's where it states one, else 1) at the paper's sampling. */
export function paperProtocol(samples = 1): Protocol {
  return { ...SAMPLING, samples };
}
