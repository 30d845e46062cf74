#!/usr/bin/python3
"""MiniMax-M1 in PyTorch eager, computed the way Hugging Face transformers' MiniMax model computes it: the
block-wise lightning-attention loop (recurrent step with a cache), eager softmax attention (repeat_kv, full
score matrix, additive causal mask), and the sparse MoE block's loop over the experts that were hit. It is the
peer our engine is measured against, on the same checkpoint and thread count; it is never a product dependency.

Reads a hub-format checkpoint (config.json + model.safetensors, f32/bf16) without the safetensors package.

With --train, one training step is a forward pass over a batch of sequences, the mean next-token cross-entropy,
loss.backward() through autograd, and torch.optim.AdamW over every weight; it is timed (best of --tries after a
warm-up step) and its peak resident memory measured (the kernel's high-water mark, reset before the step).

usage: minimax_torch.py CHECKPOINT_DIR --threads T [--prefill N ...] [--decode STEPS --contexts C ...]
                        [--logits-ids 1,2,3 --logits-out FILE] [--train BATCHxTOKENS ...]
Prints one JSON object: {"torch": version, "threads": T, "prefill": [...], "decode": [...], "train": [...]}.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + b : base + end]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).float()
    return out


class RMSNorm(torch.nn.Module):
    def __init__(self, weight, eps):
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


class Linear(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, x):
        return F.linear(x, self.weight)


class LightningAttention(torch.nn.Module):
    """transformers MiniMaxLightningAttention: block loop for prefill, recurrence with a cached state."""

    def __init__(self, cfg, w, p, layer):
        super().__init__()
        self.heads, self.d, self.block = cfg["num_attention_heads"], cfg["head_dim"], cfg.get("block_size", 256)
        self.qkv_proj = Linear(w[p + "qkv_proj.weight"])
        self.output_gate = Linear(w[p + "output_gate.weight"])
        self.out_proj = Linear(w[p + "out_proj.weight"])
        self.norm = RMSNorm(w[p + "norm.weight"], 1e-6)
        n, L = self.heads, cfg["num_hidden_layers"]
        base = 1 / (2 ** (8 / n))
        factor = 1 - layer / (L - 1) + 1e-5 if L > 1 else 1 + 1e-5
        self.slope_rate = (base ** (torch.arange(n) + 1) * factor)[:, None, None].float()
        r = torch.arange(self.block) + 1
        self.query_decay = torch.exp(-self.slope_rate * r[:, None])
        self.key_decay = torch.exp(-self.slope_rate * (self.block - r[:, None]))
        diag = self.slope_rate * (r[:, None] - r[None, :])[None, None, :, :]
        self.diagonal_decay = torch.exp(torch.where(diag >= 0, -diag, float("-inf")))

    def forward(self, x, cache):
        b, n, _ = x.shape
        qkv = F.silu(self.qkv_proj(x)).reshape(b, n, self.heads, 3 * self.d)
        q, k, v = torch.split(qkv, self.d, dim=3)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        state = cache.get("state")
        out = []
        if state is None:
            state = torch.zeros(b, self.heads, self.d, self.d)
            for i in range((n + self.block - 1) // self.block):
                s, e = i * self.block, min((i + 1) * self.block, n)
                m = e - s
                qb, kb, vb = q[:, :, s:e], k[:, :, s:e], v[:, :, s:e]
                block_decay = torch.exp(-self.slope_rate * m)
                intra = torch.matmul(torch.matmul(qb, kb.transpose(-1, -2)) * self.diagonal_decay[:, :, :m, :m], vb)
                inter = torch.matmul(qb * self.query_decay[:, :m], state)
                out.append(inter + intra)
                state = state * block_decay + torch.matmul((kb * self.key_decay[:, -m:]).transpose(-1, -2), vb)
        else:
            ratio = torch.exp(-self.slope_rate)
            for i in range(n):
                state = ratio * state + torch.matmul(k[:, :, i : i + 1].transpose(-1, -2), v[:, :, i : i + 1])
                out.append(torch.matmul(q[:, :, i : i + 1], state))
        cache["state"] = state
        o = torch.cat(out, dim=-2).transpose(1, 2).reshape(b, n, self.heads * self.d)
        o = self.norm(o)
        o = torch.sigmoid(self.output_gate(x)) * o
        return self.out_proj(o)


def repeat_kv(x, groups):
    b, h, n, d = x.shape
    if groups == 1:
        return x
    return x[:, :, None, :, :].expand(b, h, groups, n, d).reshape(b, h * groups, n, d)


class SoftmaxAttention(torch.nn.Module):
    """Eager attention: partial NeoX RoPE on rotary_dim dims, KV cache by concatenation, full score matrix."""

    def __init__(self, cfg, w, p):
        super().__init__()
        self.heads, self.kv_heads, self.d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.rot = cfg.get("rotary_dim", self.d)
        self.theta = cfg.get("rope_theta", 1e6)
        self.q_proj, self.k_proj = Linear(w[p + "q_proj.weight"]), Linear(w[p + "k_proj.weight"])
        self.v_proj, self.o_proj = Linear(w[p + "v_proj.weight"]), Linear(w[p + "o_proj.weight"])
        self.inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.rot, 2, dtype=torch.float64) / self.rot))

    def rope(self, x, pos):
        freqs = pos[:, None].double() * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().float()[None, None], emb.sin().float()[None, None]
        xr, xp = x[..., : self.rot], x[..., self.rot :]
        half = self.rot // 2
        rotated = torch.cat((-xr[..., half:], xr[..., :half]), dim=-1)
        return torch.cat((xr * cos + rotated * sin, xp), dim=-1)

    def forward(self, x, cache, start):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv_heads, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv_heads, self.d).transpose(1, 2)
        pos = torch.arange(start, start + n)
        q, k = self.rope(q, pos), self.rope(k, pos)
        if "k" in cache:
            k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v
        total = k.shape[2]
        groups = self.heads // self.kv_heads
        scores = torch.matmul(q, repeat_kv(k, groups).transpose(2, 3)) / math.sqrt(self.d)
        if n > 1:
            mask = torch.full((n, total), torch.finfo(torch.float32).min).triu(total - n + 1)
            scores = scores + mask[None, None]
        probs = F.softmax(scores, dim=-1, dtype=torch.float32)
        o = torch.matmul(probs, repeat_kv(v, groups)).transpose(1, 2).reshape(b, n, self.heads * self.d)
        return self.o_proj(o)


class SparseMoe(torch.nn.Module):
    """transformers MiniMaxSparseMoeBlock: softmax router, top-k renormalised, a loop over the experts hit."""

    def __init__(self, cfg, w, p):
        super().__init__()
        self.top_k, self.num_experts = cfg["num_experts_per_tok"], cfg["num_local_experts"]
        self.gate = Linear(w[p + "gate.weight"])
        self.experts = [
            (Linear(w[f"{p}experts.{e}.w1.weight"]), Linear(w[f"{p}experts.{e}.w3.weight"]), Linear(w[f"{p}experts.{e}.w2.weight"]))
            for e in range(self.num_experts)
        ]

    def forward(self, x):
        b, n, h = x.shape
        x = x.view(-1, h)
        routing = F.softmax(self.gate(x), dim=1, dtype=torch.float)
        routing, selected = torch.topk(routing, self.top_k, dim=-1)
        routing /= routing.sum(dim=-1, keepdim=True)
        final = torch.zeros_like(x)
        mask = F.one_hot(selected, num_classes=self.num_experts).permute(2, 1, 0)
        for e in torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero():
            w1, w3, w2 = self.experts[e]
            idx, top_x = torch.where(mask[e].squeeze(0))
            y = w2(F.silu(w1(x[top_x])) * w3(x[top_x])) * routing[top_x, idx, None]
            final.index_add_(0, top_x, y)
        return final.view(b, n, h)


class Model(torch.nn.Module):
    def __init__(self, ckpt):
        super().__init__()
        with open(os.path.join(ckpt, "config.json")) as f:
            cfg = json.load(f)
        w = load_safetensors(os.path.join(ckpt, "model.safetensors"))
        self.weights = list(w.values())
        eps = cfg.get("rms_norm_eps", 1e-5)
        self.embed = w["model.embed_tokens.weight"]
        self.lm_head = Linear(w["lm_head.weight"])
        self.norm = RMSNorm(w["model.norm.weight"], eps)
        self.layers = []
        for l, t in enumerate(cfg["attn_type_list"]):
            p = f"model.layers.{l}."
            attn = LightningAttention(cfg, w, p + "self_attn.", l) if t == 0 else SoftmaxAttention(cfg, w, p + "self_attn.")
            kind = "linear" if t == 0 else "full"
            self.layers.append({
                "attn": attn,
                "ln1": RMSNorm(w[p + "input_layernorm.weight"], eps),
                "ln2": RMSNorm(w[p + "post_attention_layernorm.weight"], eps),
                "moe": SparseMoe(cfg, w, p + "block_sparse_moe."),
                "alpha": cfg.get(f"layernorm_{kind}_attention_alpha", 1), "beta": cfg.get(f"layernorm_{kind}_attention_beta", 1),
                "mlp_alpha": cfg.get("layernorm_mlp_alpha", 1), "mlp_beta": cfg.get("layernorm_mlp_beta", 1),
                "softmax": t == 1,
            })

    def forward(self, ids, caches, start):
        x = self.decoder(self.embed[ids][None], caches, start)
        return self.lm_head(self.norm(x[:, -1:]))[0, -1]

    def decoder(self, x, caches, start):
        for layer, cache in zip(self.layers, caches):
            a = layer["ln1"](x)  # postnorm: the residual is the normalised input
            o = layer["attn"](a, cache, start) if layer["softmax"] else layer["attn"](a, cache)
            h = a * layer["alpha"] + o * layer["beta"]
            bn = layer["ln2"](h)
            x = bn * layer["mlp_alpha"] + layer["moe"](bn) * layer["mlp_beta"]
        return x

    def loss(self, ids):
        """Mean next-token cross-entropy of a batch of sequences [batch, tokens] (positions from 0 in each)."""
        x = self.decoder(self.embed[ids], [{} for _ in self.layers], 0)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def token_ids(n, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, vocab, (n,), generator=g)


def peak_rss_reset():
    """Resets the kernel's high-water mark of this process's resident memory (VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train(model, shape, tries):
    """Training steps on a [batch, tokens] batch: the best time of `tries` steps after one warm-up step."""
    batch, tokens = shape
    for t in model.weights:
        t.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.weights, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    ids = token_ids(batch * tokens, model.embed.shape[0], 5).reshape(batch, tokens)
    weight_bytes = sum(t.numel() * t.element_size() for t in model.weights)
    best, peak, loss = math.inf, 0, None
    for i in range(tries + 1):
        peak_rss_reset()
        t = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(ids)
        loss.backward()
        optimizer.step()
        seconds = time.perf_counter() - t
        peak = max(peak, peak_rss_bytes())
        if i > 0:
            best = min(best, seconds)
    state_bytes = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    return {"batch": batch, "tokens": tokens, "seconds": best, "tok_s": batch * tokens / best, "loss": loss.item(),
            "peak_rss_bytes": peak, "weight_bytes": weight_bytes, "grad_bytes": weight_bytes, "optimizer_bytes": state_bytes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--prefill", type=int, nargs="*", default=[])
    ap.add_argument("--decode", type=int, default=0, help="decode steps per context")
    ap.add_argument("--contexts", type=int, nargs="*", default=[0])
    ap.add_argument("--tries", type=int, default=2)
    ap.add_argument("--logits-ids", default=None)
    ap.add_argument("--logits-out", default=None)
    ap.add_argument("--train", nargs="*", default=[], help="training steps on batches BATCHxTOKENS, e.g. 2x1024")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Model(args.checkpoint)
    vocab = model.embed.shape[0]
    nl = len(model.layers)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "prefill": [], "decode": [], "train": []}
    with torch.inference_mode():
        if args.logits_ids:
            ids = torch.tensor([int(t) for t in args.logits_ids.split(",")])
            logits = model(ids, [{} for _ in range(nl)], 0)
            with open(args.logits_out, "wb") as f:
                f.write(logits.contiguous().numpy().tobytes())
        model(token_ids(16, vocab, 9), [{} for _ in range(nl)], 0)  # warm up
        for n in args.prefill:
            ids = token_ids(n, vocab, 1)
            best = math.inf
            for _ in range(args.tries):
                t = time.perf_counter()
                model(ids, [{} for _ in range(nl)], 0)
                best = min(best, time.perf_counter() - t)
            result["prefill"].append({"tokens": n, "seconds": best, "tok_s": n / best})
            print(f"peer prefill {n}: {n / best:.1f} tok/s", file=sys.stderr)
        for c in args.contexts if args.decode else []:
            caches = [{} for _ in range(nl)]
            if c > 0:
                model(token_ids(c, vocab, 7), caches, 0)
            steps = token_ids(args.decode + 1, vocab, 3)
            pos, best = c, math.inf
            for _ in range(args.tries):  # each try continues the same cache
                model(steps[:1], caches, pos)  # warm
                t = time.perf_counter()
                for i in range(args.decode):
                    model(steps[i + 1 : i + 2], caches, pos + 1 + i)
                best = min(best, time.perf_counter() - t)
                pos += args.decode + 1
            result["decode"].append({"context": c, "steps": args.decode, "seconds": best, "tok_s": args.decode / best})
            print(f"peer decode at {c}: {args.decode / best:.1f} tok/s", file=sys.stderr)
    for spec in args.train:
        r = train(model, tuple(int(x) for x in spec.split("x")), args.tries)
        result["train"].append(r)
        print(f"peer training step {spec}: {r['tok_s']:.1f} tok/s, peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
