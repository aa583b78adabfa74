"""The task classes: the templates flytekitplugins-openai renders, run locally through our connectors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from google.protobuf import json_format

from core_connectors_openai import (
    BatchEndpointConnector,
    BatchEndpointTask,
    ChatGPTConnector,
    ChatGPTTask,
    DownloadBatchResultsTask,
    UploadJSONLFileTask,
)

pytestmark = pytest.mark.network


@pytest.fixture
def registry(connector_registry):
    connector_registry.register(ChatGPTConnector())
    connector_registry.register(BatchEndpointConnector())
    return connector_registry


def test_chatgpt_task_returns_the_reply(fake, registry):
    task = ChatGPTTask("ask", chatgpt_config={"model": "gpt-4o-mini", "max_tokens": 10}, progress=False)
    assert task(message="hi") == "echo: hi"
    assert fake.requests[0].body["max_tokens"] == 10


def test_chatgpt_task_needs_a_model():
    with pytest.raises(ValueError, match="'model'"):
        ChatGPTTask("ask", chatgpt_config={})


def test_upload_batch_and_download_chain_like_flytekits_workflow(fake, registry, jsonl_file, tmp_path):
    file_id = UploadJSONLFileTask("upload")(jsonl_in=str(jsonl_file))
    result = BatchEndpointTask("batch", config={"metadata": {"k": "v"}}, progress=False)(input_file_id=file_id)
    assert result["status"] == "completed" and result["input_file_id"] == file_id
    files = DownloadBatchResultsTask("download", directory=str(tmp_path))(batch_endpoint_result=result)
    assert files.error_file is None
    assert open(files.output_file).read().count("custom_id") == 2


async def test_tasks_can_be_awaited(fake, registry):
    task = ChatGPTTask("ask", chatgpt_config={"model": "m"}, progress=False)
    assert await task.acall(message="from a loop") == "echo: from a loop"


def _shape(template) -> dict:
    """What the service reads from a template: type, version, custom, and the interface's names and types."""
    interface = {
        side: {name: var.type.WhichOneof("type") + ":" + str(var.type.simple) for name, var in vm.variables.items()}
        for side, vm in (("in", template.interface.inputs), ("out", template.interface.outputs))
    }
    return {
        "type": template.type,
        "version": template.task_type_version,
        "custom": json_format.MessageToDict(template.custom),
        "interface": interface,
    }


def test_templates_have_flytekitplugins_openai_shapes(flytekit_openai):
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    pairs = [
        (
            flytekit_openai.ChatGPTTask(name="c", openai_organization="org", chatgpt_config={"model": "m", "n": 2}),
            ChatGPTTask("c", openai_organization="org", chatgpt_config={"model": "m", "n": 2}),
        ),
        (
            flytekit_openai.BatchEndpointTask(name="b", config={"metadata": {"a": "b"}}),
            BatchEndpointTask("b", config={"metadata": {"a": "b"}}),
        ),
    ]
    for their_task, our_task in pairs:
        their_template = get_serializable(OrderedDict(), settings, their_task).template.to_flyte_idl()
        assert _shape(our_task.task_template()) == _shape(their_template)
