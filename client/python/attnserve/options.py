"""Turns the keyword options of AttentionClient calls into attention.v1 enums and a Mask."""
import numpy as np

from ._proto import pb
from .tensors import encode, encode_bool

_CAUSAL = {"none": pb.CAUSAL_NONE, "upper_left": pb.CAUSAL_UPPER_LEFT,
           "lower_right": pb.CAUSAL_LOWER_RIGHT}
_MAPS = {"none": pb.ATTENTION_MAPS_NONE, "probabilities": pb.ATTENTION_MAPS_PROBABILITIES,
         "scores": pb.ATTENTION_MAPS_SCORES, "both": pb.ATTENTION_MAPS_PROBABILITIES_AND_SCORES}


def causal_enum(causal):
    """None/False/'none', True/'upper_left' (PyTorch's is_causal) or 'lower_right'."""
    if causal is None or causal is False:
        return pb.CAUSAL_NONE
    if causal is True:
        return pb.CAUSAL_UPPER_LEFT
    if causal not in _CAUSAL:
        raise ValueError(f"causal must be one of {sorted(_CAUSAL)}, True or None, not {causal!r}")
    return _CAUSAL[causal]


def maps_enum(maps):
    """None/'none', 'probabilities', 'scores' or 'both'."""
    key = "none" if maps is None else maps
    if key not in _MAPS:
        raise ValueError(f"maps must be one of {sorted(_MAPS)} or None, not {maps!r}")
    return _MAPS[key]


def build_mask(causal=None, key_lengths=None, allowed=None, bias=None, encoding="data"):
    """A Mask: bias is sent as float32, allowed as BOOL (nonzero = may attend)."""
    mask = pb.Mask(causal=causal_enum(causal))
    if key_lengths is not None:
        mask.key_lengths.extend(int(n) for n in np.asarray(key_lengths).ravel())
    if allowed is not None:
        mask.allowed.CopyFrom(encode_bool(allowed, encoding))
    if bias is not None:
        mask.bias.CopyFrom(encode(np.asarray(bias, dtype=np.float32), "float32", encoding))
    return mask
