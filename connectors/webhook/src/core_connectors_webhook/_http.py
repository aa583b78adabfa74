"""The HTTP side of the webhook connector: httpx over a network backend that checks every destination.

Imported on the first request, never by the plugin module. Each connection httpcore opens goes through
``GuardedBackend.connect_tcp``: the name is resolved, every address is checked against the policy, and only
then is a connection opened, to one of the checked addresses (so a DNS answer that changes between the check
and the connection cannot slip past it). TLS still verifies the certificate against the name in the URL.
Redirects are followed here, hop by hop, only when the task asks; each hop connects through the same check.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ipaddress
import logging
import socket
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from core_connectors.secrets import scrub

from .destinations import Address, DestinationDenied, DestinationPolicy

__all__ = ["MAX_REDIRECTS", "Clients", "GuardedBackend", "Reply", "exchange"]

MAX_REDIRECTS = 5
"""Hops followed when a task sets ``follow_redirects``; one more is a failure."""
ACCEPT_ENCODING = "gzip, deflate"
"""The encodings offered: those ``_read_text`` decodes within its limit (one layer of either)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every address, then connect to a checked one; ``inner`` opens the sockets."""

    def __init__(self, policy: DestinationPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int) -> list[Address]:
        """The addresses of ``host`` if the policy lets webhooks reach all of them; else DestinationDenied."""
        try:
            addresses: list[Address] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as e:
                raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from None
            found = (ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
            addresses = list(dict.fromkeys(found))
        self.policy.check(host, addresses)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.checked_addresses(host, port):
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        assert error is not None  # checked_addresses never returns an empty list
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise DestinationDenied("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _Transport(httpx.AsyncBaseTransport):
    """httpx's transport contract over an httpcore pool that connects through a GuardedBackend."""

    def __init__(self, backend: GuardedBackend) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=backend,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore's errors as httpx's of the same name (ConnectTimeout, ReadError, ...), as httpx's own
    transport maps them, so that callers catch one family."""
    try:
        yield
    except (
        httpcore.TimeoutException,
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
    ) as e:
        raise getattr(httpx, type(e).__name__, httpx.TransportError)(str(e)) from e


class Clients:
    """One pooled httpx client per event loop (the service has one loop; each local run has its own)."""

    def __init__(self, policy: DestinationPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._backend = GuardedBackend(policy, inner)
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._by_loop.get(loop)
        if client is None:
            _scrub_httpx_logs()
            # trust_env=False: a proxy from the environment would take the connection past the checks.
            client = httpx.AsyncClient(
                transport=_Transport(self._backend),
                trust_env=False,
                follow_redirects=False,
                headers={"Accept-Encoding": ACCEPT_ENCODING},
            )
            self._by_loop[loop] = client
        return client


@dataclass
class Reply:
    status_code: int
    text: str
    truncated: bool
    location: str | None  # of a redirect that was not followed


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    data: Any,
    timeout: float,
    max_bytes: int,
    follow_redirects: bool,
    secret_headers: frozenset[str],
) -> Reply:
    """Send the request (GET: ``data`` as query parameters, POST: as a JSON body) and read at most
    ``max_bytes`` of the answer; the caller bounds the whole exchange in time."""
    if method == "GET":  # the URL's own query is kept (httpx's params= would replace it, and flytekit's loses it)
        target = httpx.URL(url).copy_merge_params(data) if data else url
        request = client.build_request("GET", target, headers=headers, timeout=timeout)
    else:
        request = client.build_request("POST", url, headers=headers, json=data, timeout=timeout)
    origin = request.url.copy_with(path="/", query=None, fragment=None)
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True)
        try:
            redirect = response.next_request
            if redirect is None or not follow_redirects:
                text, truncated = await _read_text(response, max_bytes)
                location = response.headers.get("location") if response.is_redirect else None
                return Reply(response.status_code, text, truncated, location)
        finally:
            await response.aclose()
        if redirect.url.copy_with(path="/", query=None, fragment=None) != origin:
            for name in secret_headers:  # a secret is for the host it was written for
                redirect.headers.pop(name, None)
        request = redirect
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)


async def _read_text(response: httpx.Response, max_bytes: int) -> tuple[str, bool]:
    """The body as text (in its Content-Type's charset when that is a text encoding, else UTF-8) and whether it
    was cut: never more than ``max_bytes`` of it, decompressed included. httpx's own decoders inflate a whole
    chunk at once (20 kB of gzip inside gzip makes gigabytes), so the raw bytes are inflated here, as far as
    the limit."""
    inflate = _inflater(response)
    decoder = codecs.getincrementaldecoder(_text_encoding(response.charset_encoding))(errors="replace")
    parts: list[str] = []
    left = max_bytes
    async for raw in response.aiter_raw():
        chunk = inflate(raw, left + 1)
        if len(chunk) > left:
            parts.append(decoder.decode(chunk[:left]))
            return "".join(parts), True
        parts.append(decoder.decode(chunk))
        left -= len(chunk)
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts), False


def _text_encoding(charset: str | None) -> str:
    try:
        codec = codecs.lookup(charset or "utf-8")
    except LookupError:
        return "utf-8"
    # base64, hex, rot13 and the like are codecs too, but not of text: the body is then read as UTF-8
    return codec.name if getattr(codec, "_is_text_encoding", True) else "utf-8"


def _inflater(response: httpx.Response) -> Callable[[bytes, int], bytes]:
    """``inflate(data, limit)``: the next at most ``limit`` bytes of the body from its raw ``data``."""
    header = response.headers.get("content-encoding", "")
    layers = [e.strip().lower() for e in header.split(",") if e.strip().lower() not in ("", "identity")]
    if not layers:
        return _as_is
    if len(layers) > 1 or layers[0] not in ("gzip", "x-gzip", "deflate"):
        raise httpx.DecodingError(
            f"the response's Content-Encoding {header!r} is not one the webhook connector reads ({ACCEPT_ENCODING})",
            request=response.request,
        )
    return _Inflate(gzip=layers[0] != "deflate", request=response.request)


def _as_is(data: bytes, limit: int) -> bytes:
    return data


class _Inflate:
    """One layer of gzip or deflate, inflated no further than asked; "deflate" with or without zlib's header,
    as servers send it either way (httpx reads both too)."""

    def __init__(self, gzip: bool, request: httpx.Request) -> None:
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._headerless = not gzip  # may still turn out to be raw deflate, on the first bytes
        self._request = request

    def __call__(self, data: bytes, limit: int) -> bytes:
        try:
            try:
                return self._inflate.decompress(data, limit)
            except zlib.error:
                if not self._headerless:
                    raise
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._inflate.decompress(data, limit)
            finally:
                self._headerless = False
        except zlib.error as e:
            raise httpx.DecodingError(f"the response body does not inflate: {e}", request=self._request) from None


class _ScrubFilter(logging.Filter):
    """httpx logs every request's URL at INFO: a secret placed in a URL must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


def _scrub_httpx_logs() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubFilter) for f in logger.filters):
            logger.addFilter(_ScrubFilter())
