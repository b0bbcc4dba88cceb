"""Schemathesis against the served OpenAPI schema: a bounded run, no 5xx on any operation.

Positive (schema-valid) and negative (schema-violating) cases for every operation, authenticated
with a bearer token, against a running station. Excluded: the endless MJPEG stream, and logout and
password change (they would end the run's own login; both are tested in test_api_auth.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from schemathesis_support import fuzz
from test_api_support import ApiEnv, api_env

EXAMPLES_PER_OPERATION = 30
EXCLUDED = {"/api/v1/camera/preview.mjpg", "/api/v1/auth/logout", "/api/v1/auth/password"}
BUDGET_S = 150.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-fuzz"), face_model, fixtures) as value:
        yield value


def test_no_operation_answers_5xx(env: ApiEnv) -> None:
    run = fuzz(
        env.app, env.auth, excluded=EXCLUDED, examples=EXAMPLES_PER_OPERATION, summary="schemathesis-summary"
    )
    assert run.operations >= 20
    assert not run.failures, "\n".join(run.failures)
    assert run.calls >= 10 * run.operations, run.statuses
    assert set(run.statuses) & {200, 201} and set(run.statuses) & {404, 422}, (
        run.statuses
    )  # both sides exercised
    assert run.seconds < BUDGET_S, f"{run.calls} calls in {run.seconds:.0f} s"
