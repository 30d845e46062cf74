// Worker thread of the math grader: answers {id, answer, target} messages with mathEquivalent's verdict, so
// that the grader can stop a comparison that takes too long by terminating this thread. Posts "ready" once loaded.
import { parentPort } from "node:worker_threads";
import { mathEquivalent } from "./math-compare.ts";

parentPort!.on("message", (msg: { id: number; answer: string; target: string }) => {
  parentPort!.postMessage({ id: msg.id, result: mathEquivalent(msg.answer, msg.target) });
});
parentPort!.postMessage("ready");
