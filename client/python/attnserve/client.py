"""AttentionClient: calls attention.v1.AttentionService with NumPy arrays in and out."""
from dataclasses import dataclass
from typing import Optional

import secrets

import grpc
import numpy as np

from ._proto import health_pb, pb
from .errors import from_rpc_error
from .options import build_mask, maps_enum
from .session import Session, step_request, step_result
from .tensors import decode, dtype_enum, encode

_SERVICE = "/attention.v1.AttentionService/"
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass
class AttendResult:
    """output [B,H,Sq,Dv] (MultiHeadAttend: [B,Sq,d_out]); maps None when not asked for.

    bfloat16 output comes back as float32 holding the bf16 values; float16 as np.float16.
    """
    output: np.ndarray
    attention: Optional[np.ndarray]
    scores: Optional[np.ndarray]
    queue_us: int
    compute_us: int


def _result(response):
    return AttendResult(
        output=decode(response.output),
        attention=decode(response.attention) if response.HasField("attention") else None,
        scores=decode(response.scores) if response.HasField("scores") else None,
        queue_us=response.timing.queue_us, compute_us=response.timing.compute_us)


class AttentionClient:
    """A channel to one attnserve. Use as a context manager or call close().

    TLS is used when tls=True or any of root_certificates / private_key / certificate_chain
    (PEM bytes) is given; `token` is sent as `authorization: Bearer <token>` on every call.
    """

    def __init__(self, target, *, tls=False, root_certificates=None, private_key=None,
                 certificate_chain=None, token=None, timeout_s=60.0,
                 max_message_bytes=64 << 20, options=()):
        channel_options = [("grpc.max_send_message_length", max_message_bytes),
                           ("grpc.max_receive_message_length", max_message_bytes), *options]
        if tls or root_certificates or private_key or certificate_chain:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key,
                                                       certificate_chain)
            self._channel = grpc.secure_channel(target, credentials, channel_options)
        else:
            self._channel = grpc.insecure_channel(target, channel_options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, path, request, response_type, timeout_s, session_id=None):
        """One unary call; `session_id` goes in the attn-session-id metadata a load balancer
        routes sessions by (docs/sessions.md)."""
        method = self._channel.unary_unary(path, request_serializer=type(request).SerializeToString,
                                           response_deserializer=response_type.FromString)
        metadata = self._metadata
        if session_id:
            metadata = (*metadata, ("attn-session-id", session_id))
        try:
            return method(request, timeout=self._timeout_s if timeout_s is None else timeout_s,
                          metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def attend(self, query, key, value, *, causal=None, key_lengths=None, allowed=None,
               bias=None, scale=None, maps="probabilities", output_dtype="float32",
               input_dtype=None, encoding="data", timeout_s=None):
        """softmax(Q K^T * scale + mask) V.

        query [B,H,Sq,D], key [B,Hkv,Sk,D], value [B,Hkv,Sk,Dv] (H a multiple of Hkv);
        causal: None, 'upper_left' (or True) or 'lower_right'; key_lengths: one per batch item;
        allowed: booleans broadcastable to [B,H,Sq,Sk] (True = may attend); bias: floats
        broadcastable likewise; maps: 'probabilities', 'scores', 'both' or None;
        input_dtype/output_dtype: 'float32', 'bfloat16' or 'float16' (input default: float16
        for float16 arrays, else float32); encoding: 'data' (raw bytes) or 'values' (floats).
        """
        request = pb.AttendRequest(
            query=encode(query, input_dtype, encoding), key=encode(key, input_dtype, encoding),
            value=encode(value, input_dtype, encoding),
            mask=build_mask(causal, key_lengths, allowed, bias, encoding),
            attention_maps=maps_enum(maps), output_dtype=dtype_enum(output_dtype))
        if scale is not None:
            request.scale = scale
        return _result(self._call(_SERVICE + "Attend", request, pb.AttendResponse, timeout_s))

    def session(self, num_layers, num_heads, head_dim, *, num_kv_heads=0, value_dim=0,
                kv_dtype="float32", max_tokens=0, idle_timeout_s=0, route_with=None,
                timeout_s=None):
        """Opens a KV-cache session (a Session; use it as a context manager). 0 = defaults:
        num_kv_heads = num_heads, value_dim = head_dim, the server's max_tokens and timeout.
        Its id (128 random bits) is drawn here and sent in the attn-session-id metadata too, so
        that a load balancer hashing it creates the session where its later calls will go.
        route_with (a Session): the new one goes where that one is (its id starts with the
        other's route), so that behind a load balancer both can be stepped in one batch."""
        session_id = secrets.token_hex(16)
        if route_with is not None:
            session_id = f"{route_with.id[:32]}-{session_id}"
        request = pb.CreateSessionRequest(
            num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
            head_dim=head_dim, value_dim=value_dim, kv_dtype=dtype_enum(kv_dtype),
            max_tokens=max_tokens, idle_timeout_s=idle_timeout_s, session_id=session_id)
        return Session(self, self._call(_SERVICE + "CreateSession", request, pb.Session,
                                        timeout_s, session_id))

    def sessions(self, timeout_s=None):
        """The Session messages of the sessions this caller owns."""
        return list(self._call(_SERVICE + "ListSessions", pb.ListSessionsRequest(),
                               pb.ListSessionsResponse, timeout_s).sessions)

    def step_batch(self, steps, timeout_s=None):
        """One step of several sessions in one call, all or nothing: `steps` are tuples
        (session, layer, query, key, value[, options dict]); returns their StepResults. When the
        sessions share a route (forks, route_with), the call carries it for a load balancer;
        otherwise it carries none (one server, or the caller routes)."""
        request = pb.SessionAttendBatchRequest(steps=[
            step_request(s[0].id, *s[1:5], **(s[5] if len(s) > 5 else {})) for s in steps])
        routes = {s[0].id[:32] for s in steps}
        response = self._call(_SERVICE + "SessionAttendBatch", request,
                              pb.SessionAttendBatchResponse, timeout_s,
                              steps[0][0].id if len(routes) == 1 else None)
        return [step_result(r) for r in response.results]

    def multi_head_attend(self, input, weights=None, *, weights_name=None, context=None,
                          causal=None, key_lengths=None, allowed=None, bias=None, scale=None,
                          maps="probabilities", average_heads=False, output_dtype="float32",
                          input_dtype=None, encoding="data", timeout_s=None):
        """Projects input [B,Sq,d_model] (and context [B,Sk,d_ctx], default input) with
        `weights` (a Weights) or the registered `weights_name`, attends per head, and applies
        w_o and add&norm when given. Output [B,Sq,d_out]; maps [B,H,Sq,Sk], or [B,Sq,Sk] with
        average_heads. Options as in attend(); weights travel in input_dtype.
        """
        if (weights is None) == (weights_name is None):
            raise ValueError("give exactly one of weights and weights_name")
        request = pb.MultiHeadAttendRequest(
            input=encode(input, input_dtype, encoding),
            mask=build_mask(causal, key_lengths, allowed, bias, encoding),
            attention_maps=maps_enum(maps), average_heads=average_heads,
            output_dtype=dtype_enum(output_dtype))
        if context is not None:
            request.context.CopyFrom(encode(context, input_dtype, encoding))
        if weights is not None:
            request.weights.CopyFrom(weights.to_proto(input_dtype, encoding))
        else:
            request.weights_name = weights_name
        if scale is not None:
            request.scale = scale
        return _result(self._call(_SERVICE + "MultiHeadAttend", request, pb.AttendResponse,
                                  timeout_s))

    def get_server_info(self, timeout_s=None):
        """The server's attention.v1.ServerInfo message (version, oneDNN ISA, limits, dtypes)."""
        return self._call(_SERVICE + "GetServerInfo", pb.GetServerInfoRequest(), pb.ServerInfo,
                          timeout_s)

    def health(self, service="attention.v1.AttentionService", timeout_s=None):
        """True when grpc.health.v1 reports SERVING for `service` ('' = the whole server)."""
        reply = self._call(_HEALTH_CHECK, health_pb.HealthCheckRequest(service=service),
                           health_pb.HealthCheckResponse, timeout_s)
        return reply.status == health_pb.HealthCheckResponse.SERVING
