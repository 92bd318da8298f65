"""Typed errors of the client: each keeps the gRPC status code and the server's message."""
import grpc


class AttnServeError(Exception):
    """A call failed; `code` is the grpc.StatusCode, `message` the server's text."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgumentError(AttnServeError):
    """Bad shapes, dtypes, masks or weights; the message names the field."""


class NotFoundError(AttnServeError):
    """An unknown weights_name."""


class ResourceExhaustedError(AttnServeError):
    """Over a size or memory limit, or the queue is full."""


class UnimplementedError(AttnServeError):
    """The server does not implement this RPC or option yet."""


class UnavailableError(AttnServeError):
    """The server is unreachable or shutting down."""


class DeadlineExceededError(AttnServeError):
    """The call's deadline passed."""


class CancelledError(AttnServeError):
    """The call was cancelled."""


class UnauthenticatedError(AttnServeError):
    """Missing or wrong credentials."""


class PermissionDeniedError(AttnServeError):
    """The credentials do not allow this call."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def from_rpc_error(error):
    """The typed AttnServeError for a grpc.RpcError raised by a call."""
    code, message = error.code(), error.details() or ""
    return _BY_CODE.get(code, AttnServeError)(code, message)
