// `m1 grad CHECKPOINT --ids 1,5,… [--token-weights 0.5,-1,…] --out FILE.safetensors [--hidden]`: the per-token
// weighted cross-entropy loss = Σ_t w_t · −log p(ids[t+1] | ids[..t]) and its gradients, written with the names and
// meanings of the golden gradient files (test/fixtures/golden/README.md): input_ids, token_weights, loss,
// token_logprobs, grad.<weight name> for every weight, and with --hidden grad.hidden.i (i = 0 the embedding output,
// i ≥ 1 after decoder layer i − 1).
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";

export const GRAD_USAGE = "m1 grad <checkpoint-dir> --ids 1,5,... [--token-weights 0.5,-1,... (n − 1 of them; default all 1)] --out FILE.safetensors [--hidden]";

export async function grad(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    ids: { type: "uints" }, "token-weights": { type: "numbers" }, out: { type: "string" }, hidden: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new InputError(`expected one checkpoint directory\nusage: ${GRAD_USAGE}`);
  if (!values.out) throw new InputError("--out is required (path of the safetensors file to write)");
  if (values.ids === undefined) throw new InputError("--ids is required (comma-separated token ids, e.g. --ids 5,17,3)");
  const ids = values.ids;
  const weights = values["token-weights"] ?? new Array(Math.max(0, ids.length - 1)).fill(1);
  const { Model, Tensor, writeSafetensors } = await import("../../engine/index.ts");
  const model = await Model.load(positionals[0]);
  const layers = model.config.numLayers;
  const hidden = values.hidden ? Array.from({ length: layers + 1 }, (_, i) => (i === 0 ? "embed" : `blocks.${i - 1}.hook_resid_post`)) : undefined;
  const r = await model.lossAndGradients([ids], { tokenWeights: [weights], activationGrads: hidden });
  const out: Record<string, InstanceType<typeof Tensor>> = {
    input_ids: new Tensor("I32", [ids.length], Int32Array.from(ids)),
    token_weights: new Tensor("F32", [weights.length], Float32Array.from(weights)),
    loss: new Tensor("F32", [1], Float32Array.of(r.loss)),
    token_logprobs: new Tensor("F32", [ids.length - 1], r.tokenLogprobs[0]),
  };
  for (const [name, g] of r.weights) out[`grad.${name}`] = g;
  hidden?.forEach((hook, i) => (out[`grad.hidden.${i}`] = r.activations.get(hook)![0]));
  writeSafetensors(values.out, out);
  process.stderr.write(`loss ${r.loss}; wrote ${Object.keys(out).length} tensors to ${values.out}\n`);
  return 0;
}
