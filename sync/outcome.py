"""`Outcome`: what the station answers to one message from the centre (becomes a ResultMessage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RefType = Literal["command", "roster_change", "roster_snapshot", "roster_status", "ack", "unknown"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """`ref` is the message's id when it had a well-formed one; `error` a stable code when not ok."""

    ref: str | None
    ref_type: RefType
    ok: bool
    error: str | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
