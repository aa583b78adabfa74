"""``core-connectors serve``: every flag also reads a ``CORE_CONNECTORS_*`` environment variable. Installed
connector plugins add flags of their own (their ``serve_options`` hook)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from .._hooks import ServeOption
from .._registry import serve_options
from ._app import DEFAULT_THREADS, ServeOptions

__all__ = ["serve"]


def _env(name: str) -> str:
    return f"CORE_CONNECTORS_{name}"


_PLUGIN_PARAMS = "core_connectors.plugin_serve_options"


class _ServeCommand(click.Command):
    """Adds the plugins' flags when an invocation first asks for its parameters (parsing or ``--help``), not
    at import; a plugin's flag that another already has is left out."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        if _PLUGIN_PARAMS not in ctx.meta:
            taken = {name for p in params for name in p.opts}
            ctx.meta[_PLUGIN_PARAMS] = [_plugin_option(o) for o in serve_options() if o.flag not in taken]
        return [*params, *ctx.meta[_PLUGIN_PARAMS]]


def _plugin_option(option: ServeOption) -> click.Option:
    def export(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        """A flag given on the command line beats the variable: set it for the connectors (and the workers)."""
        if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            os.environ[option.envvar] = ",".join(value) if option.multiple else value

    return click.Option(
        [option.flag],
        multiple=option.multiple,
        metavar=option.metavar,
        envvar=option.envvar,
        show_envvar=True,
        help=option.help,
        expose_value=False,
        callback=export,
    )


@click.command(cls=_ServeCommand, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--port", type=int, default=8000, envvar=_env("PORT"), show_envvar=True, help="gRPC port.")
@click.option("--host", default="[::]", envvar=_env("HOST"), show_envvar=True, help="Address to listen on.")
@click.option(
    "--prometheus-port",
    "--prometheus_port",
    "prometheus_port",
    type=int,
    default=9090,
    envvar=_env("PROMETHEUS_PORT"),
    show_envvar=True,
    help="Port of the Prometheus metrics endpoint; 0 turns it off.",
)
@click.option(
    "--modules",
    multiple=True,
    envvar=_env("MODULES"),
    show_envvar=True,
    help="Extra module that registers connectors (repeatable; the working directory is on sys.path).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=DEFAULT_THREADS,
    envvar=_env("THREADS"),
    show_envvar=True,
    help="Size of the thread pool that runs plain `def` connector methods.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    envvar=_env("GRACE"),
    show_envvar=True,
    help="Seconds that calls in flight get to finish after SIGTERM/SIGINT.",
)
@click.option(
    "--drain-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    envvar=_env("DRAIN_DELAY"),
    show_envvar=True,
    help="Seconds to keep serving after SIGTERM while health answers NOT_SERVING, so that load balancers "
    "that probe health take the replica out first (before --grace starts).",
)
@click.option(
    "--loop",
    type=click.Choice(["auto", "uvloop", "asyncio"]),
    default="auto",
    envvar=_env("LOOP"),
    show_envvar=True,
    help="Event loop: uvloop (faster; `auto` takes it when installed) or asyncio's own.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    envvar=_env("WORKERS"),
    show_envvar=True,
    help="Processes that share the port (SO_REUSEPORT); metrics report their totals.",
)
@click.option(
    "--tracing/--no-tracing",
    default=False,
    envvar=_env("TRACING"),
    show_envvar=True,
    help="OpenTelemetry spans for every call (needs core-connectors[otel]; OTEL_* variables configure the export).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    envvar=_env("TLS_CERT"),
    show_envvar=True,
    help="PEM certificate chain of the server (turns TLS on, with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False),
    envvar=_env("TLS_KEY"),
    show_envvar=True,
    help="PEM private key of the server.",
)
@click.option(
    "--tls-client-ca",
    type=click.Path(dir_okay=False),
    envvar=_env("TLS_CLIENT_CA"),
    show_envvar=True,
    help="PEM CA bundle that client certificates must chain to (mutual TLS).",
)
@click.option(
    "--max-message-mb",
    type=click.IntRange(min=1),
    default=4,
    envvar=_env("MAX_MESSAGE_MB"),
    show_envvar=True,
    help="Largest gRPC message received or sent, in MiB.",
)
@click.option(
    "--max-concurrent-calls",
    "max_concurrent_calls",
    multiple=True,
    metavar="TASK_TYPE=N",
    callback=lambda ctx, param, value: _bounds(value),
    envvar=_env("MAX_CONCURRENT_CALLS"),
    show_envvar=True,
    help="Bound on one connector's calls at once (repeatable); a call over it waits briefly, then gets "
    "RESOURCE_EXHAUSTED. Default: the connector's max_concurrent_calls, else half of --threads for `def` methods.",
)
@click.option(
    "--retryable-as-state/--no-retryable-as-state",
    default=False,
    envvar=_env("RETRYABLE_AS_STATE"),
    show_envvar=True,
    help="Answer retryable failures as propellers before flyte 1.16.0 read them: phase UNDEFINED and the "
    "deprecated state RETRYABLE_FAILURE (those propellers fail the task on the phase RETRYABLE_FAILED).",
)
@click.option(
    "--sign-metadata/--no-sign-metadata",
    default=False,
    envvar=_env("SIGN_METADATA"),
    show_envvar=True,
    help="Sign the resource metadata returned to propeller (HMAC-SHA256; keys in the connector secret "
    "metadata_signing_keys, the first signs, all verify) and refuse metadata that does not verify.",
)
@click.option(
    "--accept-unsigned-metadata/--no-accept-unsigned-metadata",
    default=False,
    envvar=_env("ACCEPT_UNSIGNED_METADATA"),
    show_envvar=True,
    help="With --sign-metadata: also accept unsigned metadata (flytekit's, or tasks started before signing), "
    "for a migration window.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    envvar=_env("TIMEOUT"),
    show_envvar=True,
    help="Serve this many seconds, then drain and exit 0 (for tests).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", envvar=_env("LOG_FORMAT"), show_envvar=True
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    envvar=_env("LOG_LEVEL"),
    show_envvar=True,
)
def serve(**kwargs: object) -> None:
    """Serve the installed connectors to FlytePropeller over gRPC (flyteidl's connector services)."""
    kwargs["modules"] = list(kwargs["modules"])  # type: ignore[call-overload]
    sys.exit(_run(ServeOptions(**kwargs)))  # type: ignore[arg-type]


def _bounds(values: tuple[str, ...]) -> dict[str, int]:
    bounds = {}
    for value in values:
        task_type, sep, number = value.rpartition("=")
        if not sep or not task_type or not number.isdigit() or int(number) < 1:
            raise click.BadParameter(
                f"{value!r}: expected TASK_TYPE=N with N >= 1", param_hint="--max-concurrent-calls"
            )
        bounds[task_type] = int(number)
    return bounds


def _run(options: ServeOptions) -> int:
    from ._app import serve as run

    return run(options)


if __name__ == "__main__":
    serve()
