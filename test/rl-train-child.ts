/** Child of rl-train.test.ts: trains in `dir` and kills itself right after step `killAfter`. */
import { join } from "node:path";
import { Tokenizer } from "../engine/tokenizer.ts";
import { Trainer } from "../engine/rl/train.ts";
import { BigramPolicy, rlConfig } from "./bigram-policy.ts";
import { ROOT } from "./helpers.ts";

const [dir, killAfter] = process.argv.slice(2);
const tokenizer = (await Tokenizer.load(join(ROOT, "engine", "checkpoints", "mini-80k")))!;
await new Trainer(new BigramPolicy(tokenizer), rlConfig(), dir).run((m) => {
  if (m.step === Number(killAfter)) process.kill(process.pid, "SIGKILL");
});
