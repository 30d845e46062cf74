"""One RL step of the demo task in PyTorch eager: the peer of benchmarks/rl/step.ts, on the same checkpoint and
thread count. P problems x G completions are sampled together with a cached batched decode at temperature 1 (the
thinking budget forces "</think>" as the engine does; a finished sequence keeps decoding padding, as a static batch
does), the completion tokens' log-probabilities are recomputed with one forward pass, then R rounds of a CISPO loss
(token weights sg(clip(r, 0, 1.28)) * A / sum|o|) over minibatches: forward, loss.backward(), torch.optim.AdamW.

usage: rl_step_torch.py CHECKPOINT_DIR --threads T [--problems 4] [--group 8] [--digits 7] [--budget 48]
                        [--rounds 4] [--seed 0]
Prints one JSON object with the seconds of rollout, logprobs, update (backward + optimiser) and the token count.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minimax_torch import Model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--digits", type=int, default=7)
    ap.add_argument("--budget", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    g = torch.Generator().manual_seed(a.seed)
    with open(os.path.join(a.checkpoint, "..", "vocab.json")) as f:
        vocab = {t: i for i, t in enumerate(json.load(f))}
    model = Model(a.checkpoint)
    think, close, end = vocab["<think>"], vocab["</think>"], vocab["</s>"]

    def operand():
        return str(int(torch.randint(1, 10, (1,), generator=g))) + "".join(str(int(d)) for d in torch.randint(0, 10, (a.digits - 1,), generator=g))

    prompts = []
    for _ in range(a.problems):
        x, y = operand(), operand()
        ids = [vocab["<s>"]] + [vocab[c] for c in x] + [vocab["+"]] + [vocab[c] for c in y] + [vocab["="], think]
        prompts += [ids] * a.group
    B, n0 = len(prompts), len(prompts[0])
    steps = a.budget + a.digits + 4

    t0 = time.perf_counter()
    with torch.no_grad():
        caches = [{} for _ in model.layers]
        x = model.decoder(model.embed[torch.tensor(prompts)], caches, 0)
        logits = model.lm_head(model.norm(x[:, -1]))
        out, spent, inside, done = [], torch.zeros(B, dtype=torch.long), torch.ones(B, dtype=torch.bool), torch.zeros(B, dtype=torch.bool)
        for t in range(steps):
            tok = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g)[:, 0]
            tok = torch.where(inside & (spent >= a.budget), torch.full_like(tok, close), tok)
            tok = torch.where(done, torch.full_like(tok, end), tok)
            inside = inside & (tok != close)
            spent += inside.long()
            done = done | (tok == end)
            out.append(tok)
            if t + 1 < steps:
                x = model.decoder(model.embed[tok][:, None], caches, n0 + t)
                logits = model.lm_head(model.norm(x[:, -1]))
        completions = torch.stack(out, dim=1)
    rollout = time.perf_counter() - t0

    seqs = torch.cat([torch.tensor(prompts), completions], dim=1)
    # the mask of real completion tokens: up to and including the first </s>
    ended = (completions == end).long().cumsum(dim=1)
    mask = ((ended == 0) | ((ended == 1) & (completions == end))).float()
    rewards = torch.randint(0, 2, (B,), generator=g).float()  # the reward's cost is nil; its values only set the weights
    adv = torch.zeros(B)
    for p in range(a.problems):
        r = rewards[p * a.group : (p + 1) * a.group]
        if r.std() > 0:
            adv[p * a.group : (p + 1) * a.group] = (r - r.mean()) / (r.std() + 1e-6)

    def token_logprobs(ids):
        x = model.decoder(model.embed[ids], [{} for _ in model.layers], 0)
        lp = F.log_softmax(model.lm_head(model.norm(x[:, :-1])), dim=-1)
        return lp.gather(-1, ids[:, 1:, None])[..., 0][:, n0 - 1 :]

    t0 = time.perf_counter()
    with torch.no_grad():
        old = token_logprobs(seqs)
    logprobs = time.perf_counter() - t0

    for w in model.weights:
        w.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.weights, lr=1e-5, betas=(0.9, 0.95), eps=1e-15)
    t0 = time.perf_counter()
    for k in range(a.rounds):
        rows = torch.arange(k, B, a.rounds)
        optimizer.zero_grad(set_to_none=True)
        new = token_logprobs(seqs[rows])
        ratio = torch.exp(new.detach() - old[rows])
        weight = torch.clamp(ratio, max=1.28) * adv[rows, None] * mask[rows]
        loss = -(weight * new).sum() / mask[rows].sum()
        loss.backward()
        optimizer.step()
    update = time.perf_counter() - t0
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "sequences": B, "new_tokens": int(mask.sum()),
                      "decode_steps": steps, "rollout_s": rollout, "logprobs_s": logprobs, "update_s": update,
                      "total_s": rollout + logprobs + update}))


if __name__ == "__main__":
    main()
