"""The topic tree of contract version 1 (docs/mqtt.md), in one place.

Every topic of a station sits under ``yz/v1/station/<station_id>/``, split by direction:
``up/...`` is written only by the station, ``down/...`` only by the centre. Broker ACLs can then
confine a station's credentials with two pattern lines (``%u`` = station id), and a station that
is stolen or cloned can neither read another station's roster nor forge its events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "yz/v1"
_STATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KIND = re.compile(r"[A-Za-z0-9._-]{1,64}")

UP_EVENT = "event"
UP_SNAPSHOT = "snapshot"
UP_ENROLMENT = "enrolment"
UP_RESULT = "result"
UP_STATUS = "status"
UP_ROSTER_REQUEST = "roster_request"
UP_TEMPLATE_REMOVAL = "template_removal"
DOWN_ROSTER = "roster"
DOWN_COMMAND = "command"
DOWN_ACK = "ack"


def _check_station(station_id: str) -> str:
    if not isinstance(station_id, str) or not _STATION_ID.fullmatch(station_id) or station_id in {".", ".."}:
        raise ValueError(f"not a usable station id for topics: {station_id!r}")
    return station_id


@dataclass(frozen=True, slots=True)
class StationTopics:
    """The topics of one station."""

    station_id: str

    def __post_init__(self) -> None:
        _check_station(self.station_id)

    @property
    def base(self) -> str:
        return f"{PREFIX}/station/{self.station_id}"

    # -- station to centre ------------------------------------------------------------------------

    def up(self, kind: str) -> str:
        """``up/<kind>`` for an outbox topic kind (event, enrolment, ...)."""
        if not _KIND.fullmatch(kind):
            raise ValueError(f"not a usable topic kind: {kind!r}")
        return f"{self.base}/up/{kind}"

    @property
    def event(self) -> str:
        return self.up(UP_EVENT)

    def snapshot(self, event_id: str) -> str:
        if not _EVENT_ID.fullmatch(event_id):
            raise ValueError(f"snapshot topics are keyed by a canonical lowercase UUID, got {event_id!r:.80}")
        return f"{self.base}/up/{UP_SNAPSHOT}/{event_id}"

    @property
    def enrolment(self) -> str:
        return self.up(UP_ENROLMENT)

    @property
    def result(self) -> str:
        return self.up(UP_RESULT)

    @property
    def status(self) -> str:
        return self.up(UP_STATUS)

    @property
    def roster_request(self) -> str:
        return self.up(UP_ROSTER_REQUEST)

    @property
    def template_removal(self) -> str:
        return self.up(UP_TEMPLATE_REMOVAL)

    # -- centre to station ------------------------------------------------------------------------

    @property
    def down_filter(self) -> str:
        """What the station subscribes to (and nothing else)."""
        return f"{self.base}/down/#"

    @property
    def roster(self) -> str:
        return f"{self.base}/down/{DOWN_ROSTER}"

    @property
    def command(self) -> str:
        return f"{self.base}/down/{DOWN_COMMAND}"

    @property
    def ack(self) -> str:
        return f"{self.base}/down/{DOWN_ACK}"


#: What a station may publish under `up/` (docs/mqtt.md, "Topics").
UP_KINDS = frozenset(
    {UP_EVENT, UP_SNAPSHOT, UP_ENROLMENT, UP_RESULT, UP_STATUS, UP_ROSTER_REQUEST, UP_TEMPLATE_REMOVAL}
)
_UP_RE = re.compile(r"yz/v1/station/([^/]{1,64})/up/([^/]{1,64})(?:/([^/]{1,64}))?")


@dataclass(frozen=True, slots=True)
class UpTopic:
    """An upward topic taken apart: the sending station, the message kind, the snapshot's event."""

    station_id: str
    kind: str
    event_id: str | None = None


def parse_up(topic: str) -> UpTopic | None:
    """`yz/v1/station/<sid>/up/<kind>` (or `.../up/snapshot/<event_id>`), or None for anything else.

    The centre reads the sender from the topic: the broker's ACL lets a station's login write only
    under its own id (docs/mosquitto/acl), so the topic names who sent it and the payload's own
    `station_id` must agree with it."""
    match = _UP_RE.fullmatch(topic)
    if match is None:
        return None
    station_id, kind, rest = match.groups()
    if not _STATION_ID.fullmatch(station_id) or station_id in {".", ".."} or kind not in UP_KINDS:
        return None
    if kind == UP_SNAPSHOT:
        if rest is None or not _EVENT_ID.fullmatch(rest):
            return None
        return UpTopic(station_id, kind, rest)
    if rest is not None:
        return None
    return UpTopic(station_id, kind)
