"""Session: a KV-cache session held by attnserve (docs/sessions.md).

Every call on a session sends its id in the attn-session-id metadata, which a load balancer in
front of several replicas hashes (the first 32 hex digits: a fork shares them) to reach the
replica that holds the session.

The server keeps each layer's keys and values; a step sends only its new tokens' query, key and
value ([H, n, D], [Hkv, n, D], [Hkv, n, Dv]) and gets the output [H, n, Dv] of those rows
attending to every cached position up to their own.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._proto import pb
from .errors import NotFoundError
from .options import maps_enum
from .tensors import decode, dtype_enum, encode

_SERVICE = "/attention.v1.AttentionService/"


@dataclass
class StepResult:
    """output [H, n, Dv]; maps [H, n, K] over positions first_position .. first_position+K-1."""
    output: np.ndarray
    attention: Optional[np.ndarray]
    scores: Optional[np.ndarray]
    position: int        # of the step's first token
    first_position: int  # the first position the layer still holds (a window drops pages)


def step_request(session_id, layer, query, key, value, *, maps=None, window_tokens=0,
                 scale=None, compute_dtype="float32", output_dtype="float32", kv_dtype=None):
    """A SessionAttendRequest; kv_dtype: how key and value travel (default float32)."""
    request = pb.SessionAttendRequest(
        session_id=session_id, layer=layer, query=encode(query), key=encode(key, kv_dtype),
        value=encode(value, kv_dtype), attention_maps=maps_enum(maps),
        compute_dtype=dtype_enum(compute_dtype), output_dtype=dtype_enum(output_dtype),
        window_tokens=window_tokens)
    if scale is not None:
        request.scale = scale
    return request


def step_result(response):
    return StepResult(
        output=decode(response.output),
        attention=decode(response.attention) if response.HasField("attention") else None,
        scores=decode(response.scores) if response.HasField("scores") else None,
        position=response.position, first_position=response.first_position)


class Session:
    """One sequence whose KV cache the server holds. A context manager: closed on exit."""

    def __init__(self, client, info):
        self._client = client
        self.info = info  # the Session message as last seen

    @property
    def id(self):
        return self.info.session_id

    def step(self, layer, query, key, value, **options):
        """Appends key/value at the next positions of `layer`, attends query (lower-right
        causal). Options: maps ('probabilities', 'scores', 'both' or None), window_tokens,
        scale, compute_dtype, output_dtype, kv_dtype, timeout_s."""
        timeout_s = options.pop("timeout_s", None)
        request = step_request(self.id, layer, query, key, value, **options)
        return step_result(self._client._call(_SERVICE + "SessionAttend", request,
                                              pb.SessionAttendResponse, timeout_s, self.id))

    def layer_step(self, layer, input, weights=None, *, weights_name=None, scale=None,
                   output_dtype="float32", timeout_s=None):
        """A decoder layer's attention from embeddings: input [1, n, d_model] (the n new
        tokens) projected with `weights` (a Weights) or the registered `weights_name`, their K
        and V appended to `layer`, attended (lower-right causal), then w_o and add&norm when the
        weights have them. Returns the output [1, n, d_out], equal to multi_head_attend over the
        whole prefix's embeddings (causal, last n rows)."""
        if (weights is None) == (weights_name is None):
            raise ValueError("give exactly one of weights and weights_name")
        request = pb.MultiHeadAttendRequest(
            input=encode(input), session_id=self.id, layer=layer,
            attention_maps=maps_enum(None), output_dtype=dtype_enum(output_dtype))
        if weights is not None:
            request.weights.CopyFrom(weights.to_proto(None, "data"))
        else:
            request.weights_name = weights_name
        if scale is not None:
            request.scale = scale
        response = self._client._call(_SERVICE + "MultiHeadAttend", request, pb.AttendResponse,
                                      timeout_s, self.id)
        return decode(response.output)

    def fork(self, tokens=None):
        """A new session sharing this one's first `tokens` positions (all when None)."""
        request = pb.ForkSessionRequest(session_id=self.id)
        if tokens is not None:
            request.tokens = tokens
        return Session(self._client, self._client._call(_SERVICE + "ForkSession", request,
                                                        pb.Session, None, self.id))

    def truncate(self, tokens):
        """Drops positions >= tokens of every layer."""
        self.info = self._client._call(
            _SERVICE + "TruncateSession",
            pb.TruncateSessionRequest(session_id=self.id, tokens=tokens), pb.Session, None,
            self.id)
        return self.info

    def refresh(self):
        self.info = self._client._call(_SERVICE + "GetSession",
                                       pb.GetSessionRequest(session_id=self.id), pb.Session, None,
                                       self.id)
        return self.info

    def close(self):
        self._client._call(_SERVICE + "CloseSession", pb.CloseSessionRequest(session_id=self.id),
                           pb.CloseSessionResponse, None, self.id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except NotFoundError:  # already gone (expired, evicted or closed)
            pass
