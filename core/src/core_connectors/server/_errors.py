"""How a failed request becomes a gRPC status: a code that says what went wrong and one line a user can act on.

Propeller spends one of the user's retries on any CreateTask error and fails the task after five GetTask
errors, so the code must be honest (NOT_FOUND, INVALID_ARGUMENT, UNIMPLEMENTED, ... are the caller's
problem; INTERNAL is the connector's). Details carry the exception's type and message and a short error id,
never a traceback; the traceback goes to the log under the same id. Values of secret-looking environment
variables, and every secret read through ``get_connector_secret``, are scrubbed from both (``secrets.scrub``).

Failures are logged through a ``LogLimit`` (``core_connectors._failure_log``, shared with connectors that end a
task on an exception): a connector that fails every call, or a caller that sends bad metadata a thousand times
a second, must cost the event loop about what a success costs, so each kind of failure gets a few lines per
window and the rest are counted (the requests_failure metric counts them all).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import NamedTuple

import grpc

from .._errors import RetryableFailure
from .._failure_log import LogLimit, error_id, one_line, traceback_text, truncate
from ..secrets import scrub

__all__ = ["Failure", "LogLimit", "ServiceError", "describe_failure", "scrub", "unimplemented"]

logger = logging.getLogger("core_connectors.server")

_Code = grpc.StatusCode

# The metrics label error_code: the HTTP status grpc-gateway gives each code, as a plain string, so that it
# reads the same on every Python version (flytekit's HTTPStatus printed differently on 3.10 and 3.12).
HTTP_CODES = {
    _Code.INVALID_ARGUMENT: "400",
    _Code.FAILED_PRECONDITION: "400",
    _Code.NOT_FOUND: "404",
    _Code.RESOURCE_EXHAUSTED: "429",
    _Code.CANCELLED: "499",
    _Code.INTERNAL: "500",
    _Code.UNKNOWN: "500",
    _Code.UNIMPLEMENTED: "501",
    _Code.UNAVAILABLE: "503",
    _Code.DEADLINE_EXCEEDED: "504",
}


class ServiceError(Exception):
    """A request the service refuses before or around the connector: carries its own status code."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class Failure(NamedTuple):
    """What goes back to the caller, and the label the failure counter gets (a tuple: made on every failure,
    at a quarter of a frozen dataclass's cost)."""

    code: grpc.StatusCode
    details: str
    error_code: str


def describe_failure(exc: BaseException, operation: str, task_type: str, limit: LogLimit | None = None) -> Failure:
    """Map ``exc`` to a status, log it under a fresh error id (within ``limit``: a traceback is formatted only
    for a line that is logged) and return what the caller will see."""
    if isinstance(exc, ServiceError) and exc.code == _Code.NOT_FOUND:
        details = truncate(str(exc))  # "Cannot find connector for task type: <name>." as flytekit words it
        held = limit.admit(("NOT_FOUND", operation)) if limit is not None else 0  # any name: one kind
        if held is not None:
            logger.warning("%s%s", details, limit.note(held) if limit is not None else "")
        return Failure(exc.code, details, HTTP_CODES[exc.code])

    code = _code_of(exc)
    cause = exc.__cause__ if isinstance(exc, ServiceError) and exc.__cause__ is not None else exc
    message = truncate(scrub(str(exc))) if isinstance(exc, ServiceError) else one_line(cause)
    subject = f"{truncate(scrub(task_type))} task" if task_type else "task"
    details = f"failed to {operation} {subject} with error: {message} (error id {error_id()})"
    held = limit.admit((code.name, type(cause).__name__, task_type, operation)) if limit is not None else 0
    if held is None:
        return Failure(code, details, HTTP_CODES.get(code, "500"))
    note = limit.note(held) if limit is not None else ""
    if code in (_Code.INTERNAL, _Code.UNKNOWN, _Code.DEADLINE_EXCEEDED):  # the caller's mistakes need no trace
        level = logging.ERROR if code == _Code.INTERNAL else logging.WARNING
        logger.log(level, "%s [%s]%s\n%s", details, code.name, note, traceback_text(cause))
    else:
        logger.warning("%s [%s]%s", details, code.name, note)
    return Failure(code, details, HTTP_CODES.get(code, "500"))


def _code_of(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, ServiceError):
        return exc.code
    if isinstance(exc, RetryableFailure):  # from create: the caller may try again
        return _Code.UNAVAILABLE
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        code = exc.code()  # a call the connector made to another gRPC service
        if code in (_Code.DEADLINE_EXCEEDED, _Code.CANCELLED):
            return code
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)):  # distinct on 3.10
        return _Code.DEADLINE_EXCEEDED
    return _Code.INTERNAL


def unimplemented(exc: Exception, task_type: str, method: str) -> Exception:
    """A connector's own NotImplementedError from an optional method is UNIMPLEMENTED, not INTERNAL."""
    if isinstance(exc, NotImplementedError):
        error = ServiceError(_Code.UNIMPLEMENTED, f"{task_type} connector does not implement {method}: {exc}")
        error.__cause__ = exc
        return error
    return exc
