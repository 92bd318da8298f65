#!/usr/bin/python3
"""Exports a PyTorch nn.MultiheadAttention (optionally with the LayerNorm of its "Add & Norm") as
an attnserve weights file (.safetensors) that `attnserve --weights_dir` loads by file stem.

PyTorch's nn.Linear stores W^T and MultiheadAttention packs W_q, W_k, W_v into one
in_proj_weight [3E, E] when query, key and value share E; attnserve's weights multiply from the
right (Q = x . w_q + b_q), so every matrix is split and transposed here.

  /usr/bin/python3 scripts/export_weights.py MODULE.pt OUT.safetensors [--layer-norm LN.pt]
  /usr/bin/python3 scripts/export_weights.py --random 64,8 OUT.safetensors   # a demo layer

MODULE.pt / LN.pt are torch.save()d modules (nn.MultiheadAttention, nn.LayerNorm).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_file  # noqa: E402


def _numpy(tensor):
    return tensor.detach().to(torch.float32).cpu().numpy()


def weights_of(mha, layer_norm=None):
    """The attnserve tensors and metadata of `mha` (and `layer_norm`)."""
    if not isinstance(mha, torch.nn.MultiheadAttention):
        raise TypeError(f"expected nn.MultiheadAttention, got {type(mha).__name__}")
    if mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError("add_bias_kv and add_zero_attn have no attnserve equivalent")
    e = mha.embed_dim
    if mha._qkv_same_embed_dim:
        w_q, w_k, w_v = mha.in_proj_weight.split(e, dim=0)
    else:
        w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    tensors = {"w_q": _numpy(w_q.t()), "w_k": _numpy(w_k.t()), "w_v": _numpy(w_v.t()),
               "w_o": _numpy(mha.out_proj.weight.t())}
    if mha.in_proj_bias is not None:
        b_q, b_k, b_v = mha.in_proj_bias.split(e)
        tensors.update(b_q=_numpy(b_q), b_k=_numpy(b_k), b_v=_numpy(b_v))
    if mha.out_proj.bias is not None:
        tensors["b_o"] = _numpy(mha.out_proj.bias)
    metadata = {"num_heads": mha.num_heads, "num_kv_heads": mha.num_heads}
    if layer_norm is not None:
        if tuple(layer_norm.normalized_shape) != (e,) or not layer_norm.elementwise_affine:
            raise ValueError(f"the LayerNorm must be affine over ({e},)")
        tensors["add_norm.gamma"] = _numpy(layer_norm.weight)
        tensors["add_norm.beta"] = _numpy(layer_norm.bias)
        metadata["add_norm.epsilon"] = repr(float(layer_norm.eps))
    return tensors, metadata


def export(mha, path, layer_norm=None):
    tensors, metadata = weights_of(mha, layer_norm)
    safetensors_file.write(path, tensors, metadata)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", nargs="?", help="torch.save()d nn.MultiheadAttention")
    parser.add_argument("out", help="output .safetensors path")
    parser.add_argument("--layer-norm", help="torch.save()d nn.LayerNorm for Add & Norm")
    parser.add_argument("--random", metavar="D_MODEL,HEADS",
                        help="export a randomly initialised layer (with LayerNorm) instead")
    args = parser.parse_args()
    if args.random:
        d_model, heads = (int(x) for x in args.random.split(","))
        torch.manual_seed(0)
        mha, layer_norm = torch.nn.MultiheadAttention(d_model, heads), torch.nn.LayerNorm(d_model)
    elif args.module:
        mha = torch.load(args.module)
        layer_norm = torch.load(args.layer_norm) if args.layer_norm else None
    else:
        parser.error("give MODULE.pt or --random D_MODEL,HEADS")
    export(mha, args.out, layer_norm)
    print(f"wrote {args.out}: num_heads={mha.num_heads} d_model={mha.embed_dim}"
          f"{' with add_norm' if layer_norm is not None else ''}")


if __name__ == "__main__":
    main()
