"""`Outcome`: what the station answers to one message from the centre (becomes a ResultMessage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from contract.messages import ResultMessage, iso_now

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

    def result_payload(self, station_id: str) -> bytes:
        """The `up/result` message answering this outcome, serialised."""
        message = ResultMessage(
            station_id=station_id,
            ref=self.ref,
            ref_type=self.ref_type,
            ok=self.ok,
            error=self.error,
            message=self.message,
            data=self.data,
            ts=iso_now(),
        )
        return message.model_dump_json().encode()
