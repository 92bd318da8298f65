#!/usr/bin/env python3
"""Calls a running attnserve from Python: causal grouped-query attention on random inputs.

    client/python/examples/attend_example.py [host:port]     (default 127.0.0.1:50051)
"""
import sys

import numpy as np

from attnserve import AttentionClient, AttnServeError


def main(address):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 8, 4, 64), dtype=np.float32)  # [B, H, Sq, D]
    k = rng.standard_normal((1, 2, 4, 64), dtype=np.float32)  # [B, Hkv, Sk, D]: 4 heads per KV
    v = rng.standard_normal((1, 2, 4, 64), dtype=np.float32)  # [B, Hkv, Sk, Dv]
    with AttentionClient(address) as client:
        info = client.get_server_info()
        print(f"attnserve {info.version} (oneDNN {info.onednn_version}, {info.onednn_isa}, "
              f"CPU tier {info.cpu_tier})")
        result = client.attend(q, k, v, causal="upper_left")
        print("output", result.output.shape, "attention", result.attention.shape,
              f"queue {result.queue_us} us, compute {result.compute_us} us")
        print("head 0 attention map (row i sees keys j <= i):")
        print(np.array2string(result.attention[0, 0], precision=3, suppress_small=True))
        half = client.attend(q, k, v, causal="upper_left", input_dtype="bfloat16",
                             output_dtype="float16", maps=None)
        print("bf16 in / f16 out, max |difference| from f32:",
              float(np.abs(half.output.astype(np.float32) - result.output).max()))
        try:
            client.attend(q, k[..., :32], v)
        except AttnServeError as error:
            print(f"a bad request raises {type(error).__name__}: {error}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
