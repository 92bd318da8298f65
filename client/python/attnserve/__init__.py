"""attnserve: a Python client of the attnserve attention service (NumPy in, NumPy out)."""
from .client import AttendResult, AttentionClient
from .errors import (AttnServeError, CancelledError, DeadlineExceededError, InvalidArgumentError,
                     NotFoundError, PermissionDeniedError, ResourceExhaustedError,
                     UnauthenticatedError, UnavailableError, UnimplementedError)
from .plot import plot_attention
from .session import Session, StepResult
from .tensors import from_bf16_bits, to_bf16_bits
from .weights import AddNorm, Weights

__all__ = ["AttendResult", "AttentionClient", "AttnServeError", "CancelledError",
           "DeadlineExceededError", "InvalidArgumentError", "NotFoundError",
           "PermissionDeniedError", "ResourceExhaustedError", "Session", "StepResult", "UnauthenticatedError",
           "UnavailableError", "UnimplementedError", "from_bf16_bits", "plot_attention",
           "to_bf16_bits", "AddNorm", "Weights"]
