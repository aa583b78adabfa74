"""The service on a background thread, for tests and notebooks that want plain blocking stubs.

Propeller is another process; a test that calls the service through blocking stubs from the main thread,
while the service runs its own event loop in a thread, sees the same thing. Used by the
``connector_service`` pytest fixture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from flyteidl.service import agent_pb2_grpc

from .._connector import ConnectorBase
from .._registry import Registry
from ._app import ConnectorServer

__all__ = ["Certificates", "ServiceThread", "make_certificates", "start_service"]


class ServiceThread:
    """A started ConnectorServer on its own loop and thread, with a channel and the three stubs to call it."""

    def __init__(self, server: ConnectorServer) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._grace: float | None = None
        self._thread = threading.Thread(target=self._run, name="connector-service", daemon=True)
        self._channel: grpc.Channel | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"localhost:{self.server.port}"

    def start(self, timeout: float = 10.0) -> ServiceThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the service did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, grace: float | None = None, timeout: float = 10.0) -> None:
        """Drain as on SIGTERM, wait for the thread to end, then close the channel."""
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self._grace = grace
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    @property
    def async_stub(self) -> agent_pb2_grpc.AsyncAgentServiceStub:
        return agent_pb2_grpc.AsyncAgentServiceStub(self.channel)

    @property
    def sync_stub(self) -> agent_pb2_grpc.SyncAgentServiceStub:
        return agent_pb2_grpc.SyncAgentServiceStub(self.channel)

    @property
    def metadata_stub(self) -> agent_pb2_grpc.AgentMetadataServiceStub:
        return agent_pb2_grpc.AgentMetadataServiceStub(self.channel)

    def __enter__(self) -> ServiceThread:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as e:  # reported to the thread that called start()
            self._error = e
            self._ready.set()
            self.server.executor.shutdown(wait=False)
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(self._grace)


def start_service(*connectors: ConnectorBase, registry: Registry | None = None, **options: Any) -> ServiceThread:
    """Serve ``connectors`` (in a fresh registry unless one is given) on a free loopback port, started."""
    if registry is None:
        registry = Registry(discover=False)
    for connector in connectors:
        registry.register(connector)
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    return ServiceThread(ConnectorServer(registry, **options)).start()


@dataclass(frozen=True)
class Certificates:
    """PEM files in a directory, and the bytes a client needs: a CA, a server and a client certificate."""

    ca_cert: str
    server_cert: str
    server_key: str
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes


def make_certificates(directory: str | os.PathLike[str]) -> Certificates:
    """A throwaway CA, a server certificate for localhost and 127.0.0.1, and a client certificate (mutual
    TLS), valid for a day. Needs ``cryptography`` (a test dependency, not one of the service)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def make(name: str, issuer: Any = None, issuer_key: Any = None, san: Any = None, usage: Any = None) -> Any:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert, key, pem, key_pem

    ca, ca_key, ca_pem, _ = make("core-connectors test CA")
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    _, _, server_pem, server_key = make("localhost", ca, ca_key, san, ExtendedKeyUsageOID.SERVER_AUTH)
    _, _, client_pem, client_key = make("propeller", ca, ca_key, None, ExtendedKeyUsageOID.CLIENT_AUTH)
    path = Path(directory)
    for name, data in (("ca.pem", ca_pem), ("server.pem", server_pem), ("server.key", server_key)):
        (path / name).write_bytes(data)
    return Certificates(
        str(path / "ca.pem"), str(path / "server.pem"), str(path / "server.key"), ca_pem, client_pem, client_key
    )
