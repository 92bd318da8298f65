#!/usr/bin/python3
"""Generates the PyTorch golden fixtures of MultiHeadAttend (tests/golden/*.safetensors).

Each fixture holds one layer's weights in attnserve's layout (w_q, w_k, w_v, w_o, b_*, add_norm.*),
the input (and context), and what PyTorch computes in float64: expected_output, and
expected_attention (per head, or averaged when average_heads). Standard layers use
torch.nn.functional.multi_head_attention_forward (+ layer_norm); GQA, which PyTorch 1.13's MHA
lacks, repeats the KV heads (repeat_interleave) and computes softmax(QK^T/sqrt(D) + mask) V.
Masks follow PyTorch's MHA convention (True = blocked) and are stored the attnserve way
(causal kind, key_lengths). The committed files let the tests run without torch:
  /usr/bin/python3 tests/golden/make_golden.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import export_weights  # noqa: E402
import safetensors_file  # noqa: E402

B, SQ, SK, D_MODEL, HEADS = 2, 5, 7, 16, 4


def blocked_masks(causal, key_lengths, sq, sk):
    """PyTorch MHA masks (True = may NOT attend) for a causal flag and key lengths."""
    attn_mask = torch.ones(sq, sk, dtype=torch.bool).triu(1) if causal else None
    padding = None
    if key_lengths is not None:
        padding = torch.arange(sk)[None, :] >= torch.tensor(key_lengths)[:, None]
    return attn_mask, padding


def torch_mha(case, gen):
    """One standard nn.MultiheadAttention-style case, computed in float64."""
    d_ctx = case.get("d_ctx", D_MODEL)
    cross = case.get("cross", False)
    sk = SK if cross else SQ
    bias = case.get("bias", True)
    mha = torch.nn.MultiheadAttention(D_MODEL, HEADS, bias=bias, kdim=d_ctx, vdim=d_ctx,
                                      batch_first=True).double()
    with torch.no_grad():
        for p in mha.parameters():
            # f32-representable, so the server (f32) and torch (f64) see the same weights
            p.copy_((torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3).float())
    x = torch.randn(B, SQ, D_MODEL, generator=gen).double()
    ctx = torch.randn(B, sk, d_ctx, generator=gen).double() if cross else x
    attn_mask, padding = blocked_masks(case.get("causal", False), case.get("key_lengths"), SQ, sk)
    average = case.get("average_heads", False)
    with torch.no_grad():
        out, maps = mha(x, ctx, ctx, key_padding_mask=padding, attn_mask=attn_mask,
                        need_weights=True, average_attn_weights=average)
        ln = None
        if case.get("add_norm"):
            ln = torch.nn.LayerNorm(D_MODEL, eps=1e-5).double()
            ln.weight.copy_(torch.randn(D_MODEL, generator=gen, dtype=torch.float64).float())
            ln.bias.copy_(torch.randn(D_MODEL, generator=gen, dtype=torch.float64).float())
            out = F.layer_norm(x + out, (D_MODEL,), ln.weight, ln.bias, ln.eps)
    tensors, metadata = export_weights.weights_of(mha, ln)
    tensors["input"] = x.float().numpy()
    if cross:
        tensors["context"] = ctx.float().numpy()
    tensors["expected_output"] = out.numpy().astype("float32")
    tensors["expected_attention"] = maps.numpy().astype("float32")
    return tensors, metadata, sk


def torch_gqa(case, gen):
    """Grouped-query attention (H=4 over Hkv=2), computed by hand in float64."""
    kv_heads, head_dim = 2, D_MODEL // HEADS
    w = {name: (torch.randn(shape, generator=gen) * 0.3).double() for name, shape in {
        "w_q": (D_MODEL, HEADS * head_dim), "w_k": (D_MODEL, kv_heads * head_dim),
        "w_v": (D_MODEL, kv_heads * head_dim), "w_o": (HEADS * head_dim, D_MODEL),
        "b_q": (HEADS * head_dim,), "b_k": (kv_heads * head_dim,), "b_v": (kv_heads * head_dim,),
        "b_o": (D_MODEL,)}.items()}
    x = torch.randn(B, SQ, D_MODEL, generator=gen).double()

    def heads(t, n):
        return t.view(B, SQ, n, head_dim).transpose(1, 2)

    q = heads(x @ w["w_q"] + w["b_q"], HEADS)
    k = heads(x @ w["w_k"] + w["b_k"], kv_heads).repeat_interleave(HEADS // kv_heads, dim=1)
    v = heads(x @ w["w_v"] + w["b_v"], kv_heads).repeat_interleave(HEADS // kv_heads, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
    attn_mask, padding = blocked_masks(case.get("causal", False), case.get("key_lengths"), SQ, SQ)
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf"))
    if padding is not None:
        scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
    p = scores.softmax(-1)
    out = (p @ v).transpose(1, 2).reshape(B, SQ, HEADS * head_dim) @ w["w_o"] + w["b_o"]
    tensors = {name: t.float().numpy() for name, t in w.items()}
    tensors["input"] = x.float().numpy()
    tensors["expected_output"] = out.numpy().astype("float32")
    tensors["expected_attention"] = p.numpy().astype("float32")
    return tensors, {"num_heads": HEADS, "num_kv_heads": kv_heads}, SQ


CASES = {
    "self_biases": {},
    "self_no_bias_causal_averaged": {"bias": False, "causal": True, "average_heads": True},
    "cross_key_padding": {"cross": True, "d_ctx": 12, "key_lengths": [7, 3]},
    "self_add_norm_causal_padding": {"add_norm": True, "causal": True, "key_lengths": [5, 2]},
    "gqa_causal": {"gqa": True, "causal": True},
}


def main():
    for index, (name, case) in enumerate(CASES.items()):
        gen = torch.Generator().manual_seed(1000 + index)
        tensors, metadata, sk = (torch_gqa if case.get("gqa") else torch_mha)(case, gen)
        metadata["causal"] = "upper_left" if case.get("causal") else "none"
        if case.get("key_lengths"):
            metadata["key_lengths"] = ",".join(str(n) for n in case["key_lengths"])
        metadata["average_heads"] = str(case.get("average_heads", False)).lower()
        metadata["kv_len"] = sk
        path = os.path.join(HERE, f"{name}.safetensors")
        safetensors_file.write(path, tensors, metadata)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
