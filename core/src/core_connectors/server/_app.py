"""The gRPC server: the three connector services, health and reflection on one ``grpc.aio`` server, and the
process around it (signals, draining, the start-up table, logging) that ``core-connectors serve`` runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from flyteidl.service import agent_pb2 as service_pb2

from .._connector import SyncConnectorBase
from .._errors import SecretNotFound
from .._failure_log import TASK_FAILURES
from .._registry import ConnectorRegistry, Registry
from .._tables import Table, print_tables
from ..tracing import tracing_enabled
from . import _wire as wire
from ._metrics import METRICS_DIR_ENV, MeteredThreadPool, Metrics
from ._service import AsyncAgentService, Dispatcher, MetadataService, SyncAgentService
from ._signing import MetadataSigner, keys_from_secret
from ._watchdog import LoopWatchdog

try:  # Flyte 2's protocol, with the extra core-connectors[flyte2]
    from . import _flyte2 as flyte2
except ModuleNotFoundError as e:
    if not (e.name or "").startswith("flyteidl2"):
        raise
    flyte2 = None  # type: ignore[assignment]

__all__ = ["ConnectorServer", "ServeError", "ServeOptions", "TlsConfig", "create_server", "serve"]

logger = logging.getLogger("core_connectors.server")

DEFAULT_THREADS = 128  # 64 plain `def` calls that each block 50 ms must overlap (DESIGN.md)
SERVICE_NAMES = tuple(s.full_name for s in service_pb2.DESCRIPTOR.services_by_name.values())


class ServeError(Exception):
    """A start-up problem the operator can fix (a port in use, a bad certificate): printed, no traceback."""


@dataclass(frozen=True)
class TlsConfig:
    """PEM bytes: the server's certificate chain and key, and the CA that client certificates must chain to."""

    cert: bytes
    key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(cls, cert: str, key: str, client_ca: str | None = None) -> TlsConfig:
        try:
            return cls(
                Path(cert).read_bytes(), Path(key).read_bytes(), Path(client_ca).read_bytes() if client_ca else None
            )
        except OSError as e:
            raise ServeError(f"cannot read TLS file {e.filename}: {e.strerror}") from None


class ConnectorServer:
    """One grpc.aio server with the connector services, health and reflection, bound to one port.

    ``await start()`` returns the bound port (pass ``port=0`` for any free one); ``await stop(grace)`` drains:
    health turns NOT_SERVING, no new calls are accepted, and calls in flight get ``grace`` seconds to finish.

    Request metrics go to ``metrics_registry`` (prometheus-client's default registry when None), served on
    ``prometheus_port`` when given; ``publish_metrics=False`` without a port only counts (a ``--workers``
    worker, or metrics turned off), and prometheus-client is then not imported.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        host: str = "[::]",
        port: int = 8000,
        threads: int = DEFAULT_THREADS,
        max_message_mb: int = 4,
        tls: TlsConfig | None = None,
        reuse_port: bool = False,
        prometheus_port: int | None = None,
        metrics_registry: Any = None,
        publish_metrics: bool = True,
        slow_callback_seconds: float = 0.1,
        max_concurrent_calls: dict[str, int] | None = None,
        retryable_as_state: bool = False,
        metadata_keys: list[bytes] | None = None,
        accept_unsigned_metadata: bool = False,
        tracing: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else ConnectorRegistry.current()
        self.host = host
        self.port = port
        self.threads = threads
        self.max_message_mb = max_message_mb
        self.tls = tls
        self.reuse_port = reuse_port
        self.prometheus_port = prometheus_port
        self.metrics_registry = metrics_registry
        self.publish_metrics = publish_metrics
        self.slow_callback_seconds = slow_callback_seconds
        self.max_concurrent_calls = dict(max_concurrent_calls or {})
        self.retryable_as_state = retryable_as_state
        self.signer = MetadataSigner(metadata_keys, accept_unsigned_metadata) if metadata_keys else None
        self.tracing = tracing
        self.executor = MeteredThreadPool(max_workers=threads, thread_name_prefix="connector")
        self.server: Any = None
        self.health: Any = None
        self.dispatcher: Dispatcher | None = None
        self._watchdog: LoopWatchdog | None = None
        self._http: Any = None
        self._totals_writer: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, watch_loop: bool = True) -> int:
        """Discover connectors, open the metrics port, start serving; returns the bound gRPC port."""
        self.registry.ensure_discovered()
        publish = self.publish_metrics or self.prometheus_port is not None
        metrics = Metrics.for_registry(self.metrics_registry) if publish else Metrics(None)
        if self.prometheus_port is not None:
            self._http = _start_metrics_server(self.prometheus_port, metrics.registry)
        totals_dir = os.environ.get(METRICS_DIR_ENV)
        if totals_dir:  # a worker of --workers: the supervisor serves the sum of every worker's totals
            self._totals_writer = asyncio.create_task(metrics.write_totals_every(totals_dir))
        try:
            return await self._start_grpc(metrics, watch_loop)
        except BaseException:
            if self._http is not None:  # do not keep the metrics port of a server that never started
                self._http[0].shutdown()
                self._http = None
            raise

    async def _start_grpc(self, metrics: Metrics, watch_loop: bool) -> int:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

        metrics.pools.append(self.executor)
        limit = self.max_message_mb * 1024 * 1024
        self.dispatcher = Dispatcher(
            self.registry,
            self.executor,
            metrics,
            threads=self.threads,
            limits=self.max_concurrent_calls,
            max_message_bytes=limit,
            retryable_as_state=self.retryable_as_state,
            signer=self.signer,
        )
        self.server = grpc.aio.server(
            interceptors=self._interceptors(),
            options=[
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
                # gRPC's own check words its refusal without the flag: ours (wire.parse) answers up to twice the
                # limit, naming --max-message-mb; gRPC still bounds what is read beyond that.
                ("grpc.max_receive_message_length", 2 * limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        services = service_pb2.DESCRIPTOR.services_by_name
        wire.add_service(self.server, services["AsyncAgentService"], AsyncAgentService(self.dispatcher))
        wire.add_service(self.server, services["SyncAgentService"], SyncAgentService(self.dispatcher))
        wire.add_service(self.server, services["AgentMetadataService"], MetadataService(self.dispatcher))
        names = SERVICE_NAMES
        if flyte2 is not None:
            names += flyte2.add_services(self.dispatcher, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, wire.GenericOnly(self.server))
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer((*names, health.SERVICE_NAME, reflection.SERVICE_NAME)),
            wire.GenericOnly(self.server),
        )
        for name in ("", *names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.port = self._bind()
        await self.server.start()
        if watch_loop:
            self.watch_loop()
        return self.port

    def _interceptors(self) -> list[Any] | None:
        """The tracing interceptor when tracing is on (``tracing=True`` or enabled by the embedding app), else
        none at all: an interceptor costs every call, even one that does nothing."""
        if not (self.tracing or tracing_enabled()):
            return None
        from ..tracing import TracingInterceptor, enable_tracing

        if not tracing_enabled():
            try:
                enable_tracing()
            except ImportError as e:
                raise ServeError(str(e)) from None
        return [TracingInterceptor()]

    def watch_loop(self) -> None:
        """Start the watchdog that names ``async def`` connector methods which block the event loop."""
        if self._watchdog is None and self.dispatcher is not None:
            self._watchdog = LoopWatchdog(self.slow_callback_seconds, self.dispatcher.method_names)
            self._watchdog.start()

    def _bind(self) -> int:
        address = self.address
        try:
            if self.tls is None:
                port = self.server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(self.tls.key, self.tls.cert)],
                    root_certificates=self.tls.client_ca,
                    require_client_auth=self.tls.client_ca is not None,
                )
                port = self.server.add_secure_port(address, credentials)
        except RuntimeError as e:  # grpc's "Failed to bind to address"
            raise ServeError(
                f"cannot listen on {address}: the port is in use or the address is not local ({e})"
            ) from None
        if not port:
            raise ServeError(f"cannot listen on {address}: the port is in use or the address is not local")
        return int(port)

    async def stop(self, grace: float | None = None, drain_delay: float = 0.0) -> None:
        """Drain: NOT_SERVING, refuse new calls, give calls in flight ``grace`` seconds, then cancel them.

        With ``drain_delay``, the server keeps serving that long after turning NOT_SERVING, so that load
        balancers that probe health (a Kubernetes readiness probe, an L7 proxy) take it out before it refuses
        anything: gRPC's own shutdown cancels calls that reach a connection after it began, before the
        client has read its GOAWAY, and a proxy that reuses idle connections can send such calls.
        """
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        if drain_delay > 0 and self.server is not None:
            await asyncio.sleep(drain_delay)
        if self.server is not None:
            await self.server.stop(grace)
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.dispatcher is not None:
            self.dispatcher.log_limit.flush()  # the failures whose lines were held back, counted
        TASK_FAILURES.flush()  # and those of tasks that connectors ended with failed_resource
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.dispatcher is not None and self.executor in self.dispatcher.metrics.pools:
            self.dispatcher.metrics.pools.remove(self.executor)
        if self._totals_writer is not None:
            self._totals_writer.cancel()
            self._totals_writer = None
            if self.dispatcher is not None:
                self.dispatcher.metrics.write_totals(os.environ[METRICS_DIR_ENV])
        if self._http is not None:
            self._http[0].shutdown()
            self._http = None

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(await self.server.wait_for_termination(timeout))

    async def __aenter__(self) -> ConnectorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(None)


def create_server(registry: Registry | None = None, **options: Any) -> ConnectorServer:
    """A ConnectorServer for ``registry`` (the current one when None); see ConnectorServer for options."""
    return ConnectorServer(registry, **options)


def _start_metrics_server(port: int, registry: Any) -> Any:
    from prometheus_client import start_http_server

    try:
        return start_http_server(port, registry=registry)
    except OSError as e:
        raise ServeError(
            f"cannot serve metrics on port {port}: {e.strerror or e} "
            "(choose another with --prometheus-port, or 0 to turn metrics off)"
        ) from None


# ------------------------------------------------------------------------------------------------ process
@dataclass
class ServeOptions:
    """Everything ``core-connectors serve`` takes; JSON-able so that worker processes receive it whole."""

    host: str = "[::]"
    port: int = 8000
    prometheus_port: int = 9090
    modules: list[str] = field(default_factory=list)
    threads: int = DEFAULT_THREADS
    grace: float = 10.0
    drain_delay: float = 0.0
    workers: int = 1
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    max_message_mb: int = 4
    max_concurrent_calls: dict[str, int] = field(default_factory=dict)  # task type -> bound
    retryable_as_state: bool = False  # for propellers before flyte 1.16.0
    sign_metadata: bool = False  # keys from the connector secret metadata_signing_keys
    accept_unsigned_metadata: bool = False  # the migration window of sign_metadata
    timeout: float | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    loop: str = "auto"
    tracing: bool = False
    worker_index: int | None = None  # set by the supervisor of --workers for each worker
    parent_fd: int | None = None  # a pipe whose end-of-file tells a worker that its supervisor died

    def tls(self) -> TlsConfig | None:
        if not self.tls_cert and not self.tls_key:
            if self.tls_client_ca:
                raise ServeError("--tls-client-ca needs --tls-cert and --tls-key")
            return None
        if not (self.tls_cert and self.tls_key):
            raise ServeError("give both --tls-cert and --tls-key")
        return TlsConfig.from_files(self.tls_cert, self.tls_key, self.tls_client_ca)


def serve(options: ServeOptions) -> int:
    """Run the service until SIGTERM/SIGINT (or ``timeout``), drain, and return the exit code."""
    configure_logging(options.log_format, options.log_level)
    try:
        if options.workers > 1 and options.worker_index is None:
            from ._workers import supervise

            return supervise(options)
        import_modules(options.modules)
        code = run_on_event_loop(_serve(options), options.loop)
    except ServeError as e:
        logger.error("%s", e)
        return 1
    _exit_if_calls_linger(code)
    return code


async def _serve(options: ServeOptions) -> int:
    server = ConnectorServer(
        host=options.host,
        port=options.port,
        threads=options.threads,
        max_message_mb=options.max_message_mb,
        max_concurrent_calls=options.max_concurrent_calls,
        retryable_as_state=options.retryable_as_state,
        metadata_keys=_signing_keys(options),
        accept_unsigned_metadata=options.accept_unsigned_metadata,
        tls=options.tls(),
        reuse_port=options.worker_index is not None,
        prometheus_port=None if options.worker_index is not None else (options.prometheus_port or None),
        publish_metrics=False,  # only on the metrics port, when there is one (a worker's supervisor serves the sum)
        tracing=options.tracing,
    )
    await server.start(watch_loop=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting at once", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        logger.info(
            "%s: draining (NOT_SERVING%s, then up to %g s for calls in flight)",
            signal.Signals(signum).name,
            f" for {options.drain_delay:g} s while still serving" if options.drain_delay else "",
            options.grace,
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    if options.timeout is not None:
        loop.call_later(options.timeout, _timed_out, stop, options.timeout)
    if options.parent_fd is not None:
        loop.add_reader(options.parent_fd, _parent_gone, loop, options.parent_fd, stop)

    if options.worker_index in (None, 0) and options.log_format == "json":  # keep every line of the log JSON
        served = [
            f"{c.name} ({c.task_category.name} v{c.task_category.version})" for c, _ in server.registry.connectors()
        ]
        logger.info("connectors served: %s", ", ".join(served) or "none")
    elif options.worker_index in (None, 0):
        print_connectors(server.registry)
    server.watch_loop()  # after the table: importing and rendering it would read as a blocked loop
    where = f"worker {options.worker_index + 1}/{options.workers}, " if options.worker_index is not None else ""
    metrics = f"metrics on :{options.prometheus_port}" if options.prometheus_port else "metrics off"
    count = len(server.registry.list_connectors())
    if options.worker_index in (None, 0):
        logger.info(
            "Flyte 2 protocol (flyteidl2.connector) %s",
            "on" if flyte2 is not None else "off: pip install 'core-connectors[flyte2]' to serve it",
        )
    logger.info(
        "serving %d connector%s on %s%s (%s%s, %d threads, %s loop, pid %d)",
        count,
        "" if count == 1 else "s",
        server.address,
        " with TLS" if server.tls else "",
        where,
        metrics,
        options.threads,
        "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
        os.getpid(),
    )
    await stop.wait()
    await server.stop(options.grace, options.drain_delay)
    logger.info("stopped")
    return 0


def _signing_keys(options: ServeOptions) -> list[bytes] | None:
    if not options.sign_metadata:
        if options.accept_unsigned_metadata:
            raise ServeError("--accept-unsigned-metadata goes with --sign-metadata")
        return None
    try:
        return keys_from_secret()
    except (SecretNotFound, ValueError) as e:
        raise ServeError(f"--sign-metadata: {e}") from None


def run_on_event_loop(main: Coroutine[Any, Any, int], loop: str = "auto") -> int:
    """Run ``main`` on uvloop where it is installed ("auto") or asked for, else on asyncio's own loop.

    uvloop is what lets the service come within a few percent of an empty servicer: grpc.aio's per-call
    bookkeeping runs on the event loop, and uvloop's is several times cheaper.
    """
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise ServeError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            policy = asyncio.get_event_loop_policy()
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            try:
                return asyncio.run(main)
            finally:
                asyncio.set_event_loop_policy(policy)
    return asyncio.run(main)


def _timed_out(stop: asyncio.Event, timeout: float) -> None:
    logger.info("served for --timeout %g s: draining", timeout)
    stop.set()


def _parent_gone(loop: asyncio.AbstractEventLoop, fd: int, stop: asyncio.Event) -> None:
    loop.remove_reader(fd)
    logger.warning("the supervising process is gone: draining")
    stop.set()


def _exit_if_calls_linger(code: int) -> None:
    """Plain `def` calls still running after the grace period would hold the exit (threads are joined at
    exit): give them a moment, then leave without them."""
    deadline = time.monotonic() + 0.2
    for thread in threading.enumerate():
        if thread.name.startswith("connector"):
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.name.startswith("connector") and t.is_alive() for t in threading.enumerate()):
        logger.warning("connector calls still running after the grace period were abandoned")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def import_modules(modules: list[str]) -> None:
    """Import extra modules that register connectors (``--modules``); a failure is a one-line ServeError."""
    try:
        ConnectorRegistry.current().import_modules(modules)
    except ImportError as e:
        logger.debug("%s", e, exc_info=True)
        raise ServeError(f"{e} (given with --modules)") from e


def print_connectors(registry: Registry) -> None:
    """The table flytekit prints at start, on stderr so that stdout stays clean for whatever wraps us.

    On a terminal it is a rich table (with core-connectors[cli]); otherwise (a pod's log) plain text, which saves
    the service the 2.4 MB that rich would keep resident for the rest of its life.
    """
    header = ("Name", "Task categories", "Is sync", "From")
    rows = [
        (
            connector.name,
            f"{connector.task_category.name} ({connector.task_category.version})",
            str(isinstance(connector, SyncConnectorBase)),
            source.describe() or "registered in code",
        )
        for connector, source in registry.connectors()
    ]
    failures = [f"plugin {f.source.entry_point!r} failed to load: {f.error}" for f in registry.failures]
    failures += [
        f"not served: {s.connector.name} ({s.connector.task_category.name} v{s.connector.task_category.version}) "
        f"from {s.source.describe()}, shadowed by {s.by.describe() or 'a connector registered in code'}"
        + (f" (CORE_CONNECTORS_DISABLE={s.by.entry_point} serves it instead)" if s.by.entry_point else "")
        for s in registry.shadowed
    ]
    notes: list[tuple[str, str | None]] = [(failure, "red") for failure in failures]
    print_tables([Table("Connectors served", header, rows, ("cyan", "cyan", "green"), notes=notes)], sys.stderr)


# ------------------------------------------------------------------------------------------------ logging
class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
