"""schemathesis drives every documented operation with generated requests: no server error,
and every answer is documented (status, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from service_harness import Service, running_service

from sigsci_iga.sim import SimConfig, create_app

#: No server error, and every answer documented: status, content type, headers, body.
#: (Whether the schema could be tighter, so that no schema-valid request is ever refused, is
#: not asked: a cursor or a site name can match its pattern and still name nothing.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    database = Path(tmp_path_factory.mktemp("schema")) / "iga.db"
    sim = create_app(SimConfig(users=12, sites=3, seed=9))
    with running_service(f"sqlite:///{database}", sim=sim) as service:
        service.post("/api/v1/imports", json={"mode": "full"})
        yield service


def test_every_operation_answers_as_documented(live: Service) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", live.api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 28
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(headers=live.headers("admin"), checks=CHECKS)

        answers_as_documented()
