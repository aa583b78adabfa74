"""The contract suite of core-connectors, run against the sleep connector."""

from __future__ import annotations

import pytest

from core_connectors.literals import python_to_literal_map
from core_connectors.testing import AsyncConnectorContract
from core_connectors_sleep import SleepConnector


class TestSleepContract(AsyncConnectorContract):
    entry_point = "sleep"

    @pytest.fixture
    def connector(self):
        return SleepConnector()

    @pytest.fixture
    def inputs(self):
        return python_to_literal_map({"duration": 0.1})

    @pytest.fixture
    def failing_case(self, task_template):
        return task_template, python_to_literal_map({"duration": -1})

    @pytest.fixture
    def metadata_samples(self):
        # What flytekit's json.dumps(asdict(...)) wrote for the same dataclass.
        return [b'{"deadline": 1700000000.5, "error": null}']
