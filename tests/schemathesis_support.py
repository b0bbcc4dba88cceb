"""One bounded schemathesis run over an app's OpenAPI schema (the station's API, the centre's).

Every operation gets schema-valid and schema-violating cases; failures (5xx) are collected, not
raised, so one run reports them all; the summary is written to tests/artifacts/<name>.json.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass
class FuzzRun:
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return sum(self.statuses.values())


def fuzz(app: Any, headers: dict[str, str], *, excluded: set[str], examples: int, summary: str) -> FuzzRun:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in excluded]
    run = FuzzRun(operations=len(operations))
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples // 2,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],  # no shrinking: failures are collected, not raised
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                response = case.call(headers=headers)
                run.statuses[response.status_code] += 1
                if response.status_code >= 500 and len(run.failures) < 10:
                    run.failures.append(
                        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                    )

            try:
                call()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to violate (no parameters, no body)
                run.unsatisfiable.append(f"{operation.method.upper()} {operation.path}")
    run.seconds = time.monotonic() - started
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{summary}.json").write_text(
        json.dumps(
            {
                "operations": run.operations,
                "calls": run.calls,
                "seconds": round(run.seconds, 1),
                "statuses": dict(sorted(run.statuses.items())),
                "no_negative_cases": run.unsatisfiable,
                "server_errors": run.failures,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return run
