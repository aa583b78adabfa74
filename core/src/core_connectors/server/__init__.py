"""The connector service: flyteidl's AsyncAgentService, SyncAgentService and AgentMetadataService, with
health, reflection and Prometheus metrics, as ``core-connectors serve`` runs it.

``create_server(registry, port=0)`` gives a ``ConnectorServer`` to start inside a running event loop;
``serve(ServeOptions(...))`` runs the whole process (signals, draining, ``--workers``).
"""

from __future__ import annotations

from ._app import ConnectorServer, ServeError, ServeOptions, TlsConfig, create_server, serve

__all__ = ["ConnectorServer", "ServeError", "ServeOptions", "TlsConfig", "create_server", "serve"]
