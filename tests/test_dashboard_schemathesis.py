"""Schemathesis against the centre's served OpenAPI schema: a bounded run, no 5xx on any operation.

Positive (schema-valid) and negative (schema-violating) cases for every operation, as an admin
(bearer token), on both databases. Excluded: the live stream (an endless response), and what
would end the run's own login (logout, password change, resetting a staff secret: each tested in
test_dashboard_api.py / test_central_web.py). A summary goes to tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from central_fixtures import CentralDb
from dashboard_support import NOW, Fleet, build_fleet, config_for
from fastapi.testclient import TestClient
from schemathesis_support import fuzz

from central.config import CentralConfig
from central.web.app import create_app

EXAMPLES_PER_OPERATION = 30
EXCLUDED = {
    "/api/v1/live",
    "/api/v1/auth/logout",
    "/api/v1/auth/password",
    "/api/v1/staff/{username}/reset",
}


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
    run = fuzz(app, auth, excluded=EXCLUDED, examples=EXAMPLES_PER_OPERATION,
               summary=f"schemathesis-centre-{central_db.kind}")  # fmt: skip
    assert run.operations >= 25
    assert not run.failures, "\n".join(run.failures)
    assert run.calls >= 10 * run.operations, run.statuses
    assert set(run.statuses) & {200, 201} and set(run.statuses) & {404, 422}, run.statuses
