"""Exceptions raised by the hippo package, all rooted in HippoError.

A server error arrives as the subclass matching its gRPC status, carrying the server's message
and, where the message names one, the field path of the problem (``search_space.parameters[0]
.float.low``).
"""

import re

import grpc

# "path: what is wrong" -- the server's way of naming a field (spec_loader, Tell, Ask).
_FIELD = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])*(?:\.[A-Za-z_][A-Za-z0-9_]*'
                    r'(?:\[[^\]]*\])*)*): ')


class HippoError(Exception):
    """Base of every error of the hippo package.

    Attributes:
        message: the server's (or the client's) explanation.
        field: the field path the message names (e.g. ``budget.max_steps``), or None.
        code: the gRPC status code, when the error came from the server.
    """

    def __init__(self, message, field=None, code=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class InvalidArgument(HippoError):
    """A request was refused for one of its values (a tell out of order, a bad count);
    ``field`` names it."""


class InvalidSpec(InvalidArgument):
    """A study spec was refused; ``field`` names the offending field."""


class NotFound(HippoError):
    """The study, trial or stage does not exist."""


class InvalidState(HippoError):
    """The request does not fit the current state: a trial told twice, an ask on an ended study."""


class Unauthenticated(HippoError):
    """The coordinator needs a token, or refused the one given."""


class Unavailable(HippoError):
    """The coordinator cannot be reached (not running, restarting, wrong address)."""


def field_of(message):
    """The field path at the start of a server message ("path: what"), or None."""
    match = _FIELD.match(message or "")
    return match.group(1) if match else None


def from_grpc(error, invalid=InvalidArgument):
    """Converts a grpc.RpcError to the matching HippoError; `invalid` is used for
    INVALID_ARGUMENT (InvalidSpec for CreateStudy, InvalidArgument elsewhere)."""
    code = error.code() if hasattr(error, "code") else None
    message = error.details() if hasattr(error, "details") else str(error)
    message = message or str(code)
    kinds = {
        grpc.StatusCode.INVALID_ARGUMENT: invalid,
        grpc.StatusCode.NOT_FOUND: NotFound,
        grpc.StatusCode.FAILED_PRECONDITION: InvalidState,
        grpc.StatusCode.OUT_OF_RANGE: InvalidState,
        grpc.StatusCode.ALREADY_EXISTS: InvalidState,
        grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
        grpc.StatusCode.PERMISSION_DENIED: Unauthenticated,
        grpc.StatusCode.UNAVAILABLE: Unavailable,
    }
    kind = kinds.get(code, HippoError)
    field = field_of(message) if issubclass(kind, InvalidArgument) else None
    return kind(message, field=field, code=code)
