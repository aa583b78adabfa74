"""The contract suite of core-connectors, run against both OpenAI connectors and the OpenAI stand-in."""

from __future__ import annotations

import pytest

from core_connectors.literals import python_to_literal_map
from core_connectors.testing import AsyncConnectorContract, SyncConnectorContract
from core_connectors_openai import BatchEndpointConnector, ChatGPTConnector
from core_connectors_openai.testing import batch_template, chatgpt_template

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("fake")]

VENDOR_SDK = ("openai", "httpx")


class TestChatGPTContract(SyncConnectorContract):
    entry_point = "openai"
    vendor_modules = VENDOR_SDK

    @pytest.fixture
    def connector(self):
        return ChatGPTConnector()

    @pytest.fixture
    def task_template(self):
        return chatgpt_template({"model": "gpt-4o-mini"}, "org-test")

    @pytest.fixture
    def inputs(self):
        return python_to_literal_map({"message": "hello"})

    @pytest.fixture
    def failing_case(self):
        return chatgpt_template({"temperature": 0.5}, "org-test"), python_to_literal_map({"message": "hi"})


class TestBatchContract(AsyncConnectorContract):
    entry_point = "openai"
    vendor_modules = VENDOR_SDK
    idempotent_create = True  # a retried create adopts the live batch its task execution started

    @pytest.fixture
    def connector(self):
        return BatchEndpointConnector()

    @pytest.fixture
    def task_template(self):
        return batch_template()

    @pytest.fixture
    def inputs(self, fake, jsonl_file):
        return python_to_literal_map({"input_file_id": fake.add_file(jsonl_file.read_bytes())})

    @pytest.fixture
    def failing_case(self):
        return batch_template(), python_to_literal_map({"input_file_id": ""})
