"""Projection weights of MultiHeadAttend (attention.v1.Weights) as NumPy arrays.

They multiply from the right: Q = input . w_q + b_q; head h uses columns [h*D, (h+1)*D).
(PyTorch's nn.Linear stores the transpose: pass linear.weight.T.)
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._proto import pb
from .tensors import encode


@dataclass
class AddNorm:
    """output = LayerNorm(input + attention_output) * gamma + beta; gamma, beta [d_model]."""
    gamma: np.ndarray
    beta: np.ndarray
    epsilon: float = 1e-5


@dataclass
class Weights:
    """w_q [d_model, H*D], w_k [d_ctx, Hkv*D], w_v [d_ctx, Hkv*Dv]; the rest optional."""
    num_heads: int
    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    num_kv_heads: int = 0  # 0 = num_heads
    w_o: Optional[np.ndarray] = None  # [H*Dv, d_out]
    b_q: Optional[np.ndarray] = None  # [H*D]
    b_k: Optional[np.ndarray] = None  # [Hkv*D]
    b_v: Optional[np.ndarray] = None  # [Hkv*Dv]
    b_o: Optional[np.ndarray] = None  # [d_out]
    add_norm: Optional[AddNorm] = None

    def to_proto(self, dtype=None, encoding="data"):
        """attention.v1.Weights with every tensor in `dtype` (see tensors.encode)."""
        message = pb.Weights(num_heads=self.num_heads, num_kv_heads=self.num_kv_heads)
        for name in ("w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o"):
            array = getattr(self, name)
            if array is not None:
                getattr(message, name).CopyFrom(encode(array, dtype, encoding))
        if self.add_norm is not None:
            message.add_norm.gamma.CopyFrom(encode(self.add_norm.gamma, dtype, encoding))
            message.add_norm.beta.CopyFrom(encode(self.add_norm.beta, dtype, encoding))
            message.add_norm.epsilon = self.add_norm.epsilon
        return message
