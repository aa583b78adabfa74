"""The service with the installed connectors found by discovery: the sleep connector over the wire."""

from __future__ import annotations

import datetime as dt

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2

from core_connectors._registry import Registry
from core_connectors.literals import python_to_literal_map

Phase = execution_pb2.TaskExecution


def test_list_agents_after_discovery_and_a_sleep_task_round_trip(connector_service):
    service = connector_service(registry=Registry(discover=True))
    agents = {a.name: a for a in service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5).agents}
    sleep = agents["Sleep Connector"]
    assert not sleep.is_sync
    assert [(c.name, c.version) for c in sleep.supported_task_categories] == [("sleep", 0)]

    stub = service.async_stub
    request = agent_pb2.CreateTaskRequest(
        template=tasks_pb2.TaskTemplate(type="sleep"),
        inputs=python_to_literal_map({"duration": dt.timedelta(seconds=60)}),
    )
    meta = stub.CreateTask(request, timeout=5).resource_meta
    get = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=meta)
    resource = stub.GetTask(get, timeout=5).resource
    assert resource.phase == Phase.RUNNING and resource.custom_info["seconds_left"] > 50
    delete = agent_pb2.DeleteTaskRequest(task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=meta)
    assert stub.DeleteTask(delete, timeout=5) == agent_pb2.DeleteTaskResponse()
