"""The OpenAPI schema documents the error body the API really sends (schemathesis conformance).

FastAPI documented every 422 as `{"detail": [ ... ]}` while the API answers
`{"detail": "...", "code": "...", "errors": [...]}`: 122 conformance failures over 13 operations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_api_support import ApiEnv, api_env

from edge.api.errors import ErrorBody

EXAMPLES_PER_MODE = 6
EXCLUDED = {"/api/v1/camera/preview.mjpg", "/api/v1/auth/logout", "/api/v1/auth/password"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-conformance"), face_model, fixtures) as value:
        yield value


def test_the_schema_names_no_error_body_the_api_never_sends(env: ApiEnv) -> None:
    schema = env.client.get("/api/v1/openapi.json", headers=env.auth).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    refs = [
        response["content"]["application/json"]["schema"].get("$ref")
        for operations in schema["paths"].values()
        for operation in operations.values()
        for status, response in operation["responses"].items()
        if status.startswith("4") and "application/json" in response.get("content", {})
    ]
    assert refs and set(refs) == {"#/components/schemas/ErrorBody"}


def test_every_response_conforms_to_the_schema(env: ApiEnv) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", env.app, headers=env.auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in EXCLUDED]
    assert len(operations) >= 20
    failures: Counter[str] = Counter()
    examples: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call(headers=env.auth)
                statuses[response.status_code] += 1
                key = f"{case.method} {case.operation.path} {response.status_code}"
                try:
                    case.validate_response(response, checks=[response_schema_conformance])
                    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                        ErrorBody.model_validate(response.json())  # undocumented statuses too
                except BaseException as exc:  # schemathesis raises an exception group
                    failures[key] += 1
                    examples.setdefault(key, f"{response.text[:200]} / {str(exc)[:300]}")

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE
    assert statuses[422] > 0, statuses  # refusals were exercised
    assert not failures, "\n".join(f"{n} x {k}: {examples[k]}" for k, n in failures.items())
