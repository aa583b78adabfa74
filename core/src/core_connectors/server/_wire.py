"""Requests taken off the wire as raw bytes and parsed by us, so that bad bytes get a clear status.

gRPC's own request deserializer answers a request that does not parse with UNKNOWN and a framework message.
Here each service is registered with no request deserializer: its handlers receive the request bytes (or,
for a client stream, an iterator of them) and call ``parse``, which turns any parse failure into
INVALID_ARGUMENT naming the RPC and the reason, never echoing the payload. Responses keep protobuf's own
serializer. Any protocol (flyteidl's services, flyteidl2's) registers its servicers through ``add_service``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from ._errors import ServiceError

__all__ = ["GenericOnly", "add_service", "parse", "too_large"]

_M = TypeVar("_M", bound=Message)
_MAX_REASON = 200  # the parser's words only; the payload is never quoted


def parse(message_type: type[_M], data: bytes, rpc: str, limit: int) -> _M:
    """The request ``data`` as ``message_type``; INVALID_ARGUMENT naming ``rpc`` and the reason when it does not
    parse (truncated or random bytes, wrong wire types, bad UTF-8 in a string, nesting past protobuf's limit),
    RESOURCE_EXHAUSTED naming the limit when it is over ``limit`` bytes."""
    if len(data) > limit:
        raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{rpc}: the request is {too_large(len(data), limit)}")
    try:
        return message_type.FromString(data)
    except Exception as e:  # DecodeError from upb; RecursionError or UnicodeDecodeError from pure-Python protobuf
        raise ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{rpc}: the request is not a valid {_full_name(message_type)} ({_reason(e)})",
        ) from None


def too_large(size: int, limit: int) -> str:
    """The words for a message over the service's size limit, naming the flag that sets it."""
    return f"{size / 2**20:.1f} MiB, over the limit of {limit / 2**20:g} MiB (--max-message-mb)"


def _full_name(message_type: Any) -> str:
    return str(message_type.DESCRIPTOR.full_name)


def _reason(exc: Exception) -> str:
    text = str(exc)
    _, sep, after = text.partition("': ")  # upb: "Error parsing message with type 'x.Y': Wire format was corrupt"
    text = (after if sep else text) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "..."


_HANDLERS = {  # (client streaming, server streaming) -> grpc's handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: object, *, serialized_replies: bool = False
) -> None:
    """Serve every method of ``service`` by the servicer's method of the same name, which receives the request
    bytes unparsed (see ``parse``) and returns (or yields) response messages of the method's output type, or,
    with ``serialized_replies``, their bytes (Flyte 2's servicer writes flyteidl's messages as flyteidl2 bytes)."""
    handlers = {}
    for method in service.methods:
        output = message_factory.GetMessageClass(method.output_type)
        serialize = None if serialized_replies else output.SerializeToString
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name), request_deserializer=None, response_serializer=serialize
        )
    # Generic handlers only, never add_registered_method_handlers: see GenericOnly.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


class GenericOnly:
    """``server`` as the generated ``add_*Servicer_to_server`` functions see it, taking their generic handlers
    and dropping their registered methods (grpcio >= 1.63 generates both calls).

    grpc.aio's serving loop keeps one pending request per registered method and, for every call it accepts,
    awaits ``asyncio.wait`` over all of them: Python work that grows with the methods registered. Ours,
    Flyte 2's, health's and reflection's (about 20) cost 8 to 12% of the server's CPU per GetTask
    (bench/gap.py --base; the empty servicer registers none). A generic handler finds a method with a dict
    lookup in each of a handful of services, ours first.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        """Dropped: the generic handler given with them serves the same methods."""
