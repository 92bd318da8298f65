"""float64 NumPy references of Attend and MultiHeadAttend, written from the contract's math."""
import numpy as np


def bf16_round(x):
    """x rounded to 8 significant bits, ties to even (normal numbers): the values bf16 holds."""
    mantissa, exponent = np.frexp(np.asarray(x, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 256) / 256, exponent)


def attend(q, k, v, scale=None, causal=None, key_lengths=None, allowed=None, bias=None):
    """(output, probabilities, scores) with -inf scores where forbidden; empty rows give P = 0."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    batch, heads, sq, d = q.shape
    sk = k.shape[2]
    group = heads // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = (1 / np.sqrt(d) if scale is None else scale) * np.einsum("bhid,bhjd->bhij", q, k)
    if bias is not None:
        scores = scores + np.asarray(bias, dtype=np.float64)
    visible = np.ones(scores.shape, dtype=bool)
    i, j = np.arange(sq)[:, None], np.arange(sk)[None, :]
    if causal in ("upper_left", True):
        visible &= j <= i
    elif causal == "lower_right":
        visible &= j <= i + sk - sq
    if key_lengths is not None:
        visible &= np.arange(sk) < np.asarray(key_lengths)[:, None, None, None]
    if allowed is not None:
        visible &= np.asarray(allowed, dtype=bool)
    scores = np.where(visible & ~np.isneginf(scores), scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores - np.where(np.isneginf(row_max), 0.0, row_max))
    total = exp.sum(axis=-1, keepdims=True)
    probs = np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)
    return np.einsum("bhij,bhjd->bhid", probs, v), probs, scores


def _project(x, w, b, heads):
    """[B,S,d] . w [d, heads*D] + b -> [B,heads,S,D]: head h takes columns [h*D, (h+1)*D)."""
    y = x @ np.asarray(w, dtype=np.float64)
    if b is not None:
        y = y + b
    return y.reshape(x.shape[0], x.shape[1], heads, -1).transpose(0, 2, 1, 3)


def multi_head_attend(x, weights, context=None, average_heads=False, **mask):
    """(output [B,Sq,d_out], probabilities, scores) of MultiHeadAttend for attnserve.Weights."""
    x = np.asarray(x, dtype=np.float64)
    ctx = x if context is None else np.asarray(context, dtype=np.float64)
    heads = weights.num_heads
    kv_heads = weights.num_kv_heads or heads
    q = _project(x, weights.w_q, weights.b_q, heads)
    k = _project(ctx, weights.w_k, weights.b_k, kv_heads)
    v = _project(ctx, weights.w_v, weights.b_v, kv_heads)
    out, probs, scores = attend(q, k, v, **mask)
    out = out.transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], -1)
    if weights.w_o is not None:
        out = out @ np.asarray(weights.w_o, dtype=np.float64)
    if weights.b_o is not None:
        out = out + weights.b_o
    if weights.add_norm is not None:
        y = x + out
        mean = y.mean(axis=-1, keepdims=True)
        var = ((y - mean) ** 2).mean(axis=-1, keepdims=True)
        norm = weights.add_norm
        out = (y - mean) / np.sqrt(var + norm.epsilon) * norm.gamma + norm.beta
    if average_heads:
        probs, scores = probs.mean(axis=1), scores.mean(axis=1)
    return out, probs, scores
