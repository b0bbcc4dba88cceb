"""Schemathesis against the centre's served OpenAPI schema: a bounded run, no 5xx on any operation.

Positive (schema-valid) and negative (schema-violating) cases for every operation, as an admin
(bearer token), on both databases. Excluded: the live stream (an endless response), and what
would end the run's own login (logout, password change, resetting a staff secret: each tested in
test_dashboard_api.py / test_central_web.py). A summary goes to tests/artifacts/.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from central_fixtures import CentralDb
from dashboard_support import NOW, Fleet, build_fleet, config_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from central.config import CentralConfig
from central.web.app import create_app

EXAMPLES_PER_OPERATION = 30
EXCLUDED = {
    "/api/v1/live",
    "/api/v1/auth/logout",
    "/api/v1/auth/password",
    "/api/v1/staff/{username}/reset",
}
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def centre(
    central_db: CentralDb, central_config: CentralConfig
) -> Iterator[tuple[Fleet, Any, dict[str, str]]]:
    fleet = build_fleet(central_db, config_for(central_config), now=NOW)
    app = create_app(fleet.ctx)
    with TestClient(app, base_url="https://testserver") as client:
        token = client.post(
            "/api/auth/login", json={"username": "admin", "password": "correct horse battery"}
        )
        yield fleet, app, {"Authorization": f"Bearer {token.json()['token']}"}


def test_no_operation_answers_5xx(centre: tuple[Fleet, Any, dict[str, str]], central_db: CentralDb) -> None:
    fleet, app, auth = centre
    fleet.store_event(station_id="hd-1", member_id="m-li", publish=False)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in EXCLUDED]
    assert len(operations) >= 25
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION // 2,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],  # no shrinking: failures are collected, not raised
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call(headers=auth)
                statuses[response.status_code] += 1
                if response.status_code >= 500 and len(failures) < 10:
                    failures.append(
                        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                    )

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE
                unsatisfiable.append(f"{operation.method.upper()} {operation.path}")
    elapsed = time.monotonic() - started
    calls = sum(statuses.values())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"schemathesis-centre-{central_db.kind}.json").write_text(
        json.dumps(
            {
                "operations": len(operations),
                "calls": calls,
                "seconds": round(elapsed, 1),
                "statuses": dict(sorted(statuses.items())),
                "no_negative_cases": unsatisfiable,
                "server_errors": failures,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    assert not failures, "\n".join(failures)
    assert calls >= 10 * len(operations), statuses
    assert set(statuses) & {200, 201} and set(statuses) & {404, 422}, statuses
