"""``BigQueryTask``: a query task that renders the template flytekitplugins-bigquery's ``BigQueryTask`` renders,
and runs locally through the connector (no flytekit needed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flyteidl.core import interface_pb2, tasks_pb2, types_pb2

from core_connectors.local import LOCAL_DOMAIN, AsyncConnectorExecutorMixin, ConnectorTask

from .connector import RESULTS, TASK_TYPE

__all__ = ["BigQueryConfig", "BigQueryTask"]


@dataclass
class BigQueryConfig:
    """Where the query runs, as in flytekit. ``QueryJobConfig`` is a ``google.cloud.bigquery.QueryJobConfig``
    or a dict of its REST ``query`` settings in camelCase (``{"useQueryCache": False}``)."""

    ProjectID: str
    Location: str | None = None
    QueryJobConfig: Any = None


class BigQueryTask(AsyncConnectorExecutorMixin, ConnectorTask):
    """Runs ``query_template`` as a BigQuery query job; inputs are the named parameters ``@name``.

    ``output_structured_dataset_type`` (any value but None, e.g. flytekit's ``StructuredDataset``) declares
    the ``results`` output: the ``bq://project:dataset.table`` URI of the job's destination table.
    """

    def __init__(
        self,
        name: str,
        query_template: str,
        task_config: BigQueryConfig,
        inputs: Mapping[str, Any] | None = None,
        output_structured_dataset_type: Any = None,
        domain: str = LOCAL_DOMAIN,
        **kwargs: Any,
    ):
        super().__init__(name=name, task_type=TASK_TYPE, inputs=inputs, sql=query_template, **kwargs)
        self.task_config = task_config
        self.domain = domain
        if output_structured_dataset_type is not None:
            self.outputs = {RESULTS: output_structured_dataset_type}

    @property
    def query_template(self) -> str:
        return self.sql or ""

    def get_custom(self) -> dict[str, Any]:
        """ProjectID, Location and Domain beside the QueryJobConfig's ``query`` settings, as flytekit writes them."""
        custom: dict[str, Any] = {
            "Location": self.task_config.Location,
            "ProjectID": self.task_config.ProjectID,
            "Domain": self.domain,
        }
        settings = self.task_config.QueryJobConfig
        if settings is not None:
            custom.update(settings if isinstance(settings, Mapping) else settings.to_api_repr()["query"])
        return custom

    def get_sql(self) -> tasks_pb2.Sql:
        """The statement with the dialect unset, as flytekit's template carries it: flytekitplugins-bigquery asks
        for ``Sql.Dialect.ANSI``, which is 0 in flytekit's model and so UNDEFINED on the wire (flyteidl's ANSI is 1).
        """
        return tasks_pb2.Sql(statement=self.query_template)

    def task_template(self) -> tasks_pb2.TaskTemplate:
        template = super().task_template()
        if self.outputs:  # a structured dataset has no plain Python type for the core to derive it from
            results = interface_pb2.Variable(
                type=types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType()),
                description=RESULTS,
            )
            template.interface.outputs.variables[RESULTS].CopyFrom(results)
        return template
