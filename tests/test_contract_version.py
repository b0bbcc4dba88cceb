"""The contract's version field is the integer 1, nothing that merely compares equal to it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from contract import messages as m

NOW = time.time()
MESSAGES: dict[str, tuple[Callable[[bytes, int], Any], dict[str, Any]]] = {
    "command": (
        m.parse_command,
        {"type": "command", "id": "c-1", "name": "open", "issued_at": NOW, "expires_at": NOW + 30},
    ),
    "ack": (m.parse_ack, {"type": "ack", "id": "a-1", "seq": 3}),
    "roster": (
        m.parse_roster,
        {
            "type": "roster_change",
            "id": "r-1",
            "version": 1,
            "issued_at": 1.0,
            "ops": [{"op": "remove_member", "member_id": "m-1"}],
        },
    ),
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_version_1_is_accepted(kind: str) -> None:
    parse, body = MESSAGES[kind]
    assert parse(json.dumps({"v": 1, **body}).encode(), 100_000).v == 1


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@pytest.mark.parametrize("version", [1.0, True, "1", 1.5, None])
def test_a_version_that_only_compares_equal_is_refused(kind: str, version: Any) -> None:
    parse, body = MESSAGES[kind]
    with pytest.raises(m.InboundError) as refused:
        parse(json.dumps({"v": version, **body}).encode(), 100_000)
    assert refused.value.code == "unsupported_version"
