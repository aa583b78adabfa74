"""A BigQuery stand-in per test, with the real client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core_connectors_bigquery.testing import FakeBigQuery


@pytest.fixture
def fake_bq(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[FakeBigQuery]:
    """The stand-in, with BIGQUERY_EMULATOR_HOST at it and no credentials secret anywhere."""
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with FakeBigQuery() as fake:
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", fake.url)
        yield fake
