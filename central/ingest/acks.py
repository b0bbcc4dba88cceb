"""`down/ack`: telling each station which of its outbox `seq`s the centre has committed.

The contract (docs/mqtt.md, "acknowledgement"): after the commit, about every second while
messages flow, a signed message listing inclusive `[first, last]` ranges of **stored** seqs only,
consecutive ones merged, never across a gap (a missing seq may be a snapshot still to come, or a
message we refused), at most 1,000 ranges per message. A station delivers by these acks, so an ack
for a seq we did not commit would lose that message for good; an ack we fail to send costs only a
re-send, which we store once.

`AckBook` is pure bookkeeping (no I/O): the ingest worker adds the seqs of each committed batch and
takes the due acks every `ack_interval_s`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from contract.messages import MAX_ACK_RANGES


def ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Sorted, de-duplicated seqs as inclusive ranges, merged only where consecutive."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        elif not out or seq > out[-1][1]:
            out.append([seq, seq])
    return out


class AckIds:
    """Ack ids (`a-` + 16 hex, the contract's `MessageId`): a random prefix per process, then a
    counter, so an ack costs no `os.urandom` (thousands a second) and ids stay unique."""

    def __init__(self) -> None:
        self._prefix = f"a-{uuid.uuid4().hex[:6]}"
        self._counter: Iterator[int] = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) % (1 << 40):010x}"


_new_ack_id = AckIds()


def ack_messages(station_id: str, seqs: Iterable[int]) -> list[dict[str, Any]]:
    """The (unsigned) ack messages covering `seqs`, 1,000 ranges each."""
    spans = ranges(seqs)
    return [
        {
            "v": 1,
            "type": "ack",
            "id": _new_ack_id(),
            "station_id": station_id,
            "stored": spans[start : start + MAX_ACK_RANGES],
        }
        for start in range(0, len(spans), MAX_ACK_RANGES)
    ]


class AckBook:
    """Seqs committed but not yet acknowledged, per station. Not thread-safe: one worker thread."""

    def __init__(self) -> None:
        self._pending: dict[str, set[int]] = {}
        self.highest: dict[str, int] = {}

    def add(self, station_id: str, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        if not seqs:
            return
        self._pending.setdefault(station_id, set()).update(seqs)
        self.highest[station_id] = max(self.highest.get(station_id, 0), max(seqs))

    def __len__(self) -> int:
        return sum(len(s) for s in self._pending.values())

    def take(self) -> dict[str, list[int]]:
        """Everything pending, by station (and forget it)."""
        taken = {station: sorted(seqs) for station, seqs in self._pending.items() if seqs}
        self._pending = {}
        return taken

    def put_back(self, station_id: str, seqs: Iterable[int]) -> None:
        """Acks that could not be published (the link is down): try again next time."""
        self._pending.setdefault(station_id, set()).update(seqs)
