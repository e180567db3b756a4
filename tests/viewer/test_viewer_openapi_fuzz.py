"""Fuzz every operation of /openapi.json (writes allowed): never a 5xx, errors are JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from _viewer_data import serve
from hypothesis import HealthCheck, settings


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    for served in serve(tmp_path_factory.mktemp("fuzz") / "store.diced", allow_writes=True):
        yield schemathesis.openapi.from_url(f"{served.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert body["status"] == response.status_code and body["error"]
