"""Schemathesis against the served OpenAPI schema: a bounded run, no 5xx on any operation.

Positive (schema-valid) and negative (schema-violating) cases for every operation, authenticated
with a bearer token, against a running station. Excluded: the endless MJPEG stream, and logout and
password change (they would end the run's own login; both are tested in test_api_auth.py).
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
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from test_api_support import ApiEnv, api_env

EXAMPLES_PER_OPERATION = 30
EXCLUDED = {"/api/v1/camera/preview.mjpg", "/api/v1/auth/logout", "/api/v1/auth/password"}
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-fuzz"), face_model, fixtures) as value:
        yield value


def test_no_operation_answers_5xx(env: ApiEnv) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", env.app, headers=env.auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in EXCLUDED]
    assert len(operations) >= 20
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
                response = case.call(headers=env.auth)
                statuses[response.status_code] += 1
                if response.status_code >= 500 and len(failures) < 10:
                    failures.append(
                        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                    )

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to violate (no parameters, no body)
                unsatisfiable.append(f"{operation.method.upper()} {operation.path}")
    elapsed = time.monotonic() - started
    calls = sum(statuses.values())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "schemathesis-summary.json").write_text(
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
    assert set(statuses) & {200, 201} and set(statuses) & {404, 422}, statuses  # both sides exercised
