"""How the centre reads what stations send: the contract's upward messages, bounded and checked.

The station's own models (`contract.messages.EventMessage`, ...) describe what it *sends*; here is
what the centre *accepts*, from a sender it does not trust (docs/mqtt.md, "Bad input"):

* unknown fields are ignored (stations may add fields within v1), known ones are strictly typed
  (`"5"` is not 5, `1` is not `true`) and bounded to what the database holds (a 64-character kind,
  a 200-character reason, an event's `details` within the event's size limit);
* the JSON itself is read by the contract's strict decoder first (UTF-8, no NaN / Infinity, no
  duplicate keys, `"v": 1`), so a message either passes whole or is refused with a stable reason;
* `station_id` in the payload must be the station the topic names (the broker's ACL vouches for
  the topic, nothing vouches for the payload).

Each refusal is a `Refusal` with a reason word that becomes a metric label and a log field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from contract.messages import (
    SAFE_INT,
    EventId,
    FaceModelName,
    Identifier,
    InboundError,
    MemberKind,
    TemplateId,
    Vector,
    check_model_dim,
    decode,
)

#: An event is a few hundred bytes; anything near this is not an event (snapshots are the big ones).
MAX_EVENT_BYTES = 64 * 1024
#: Status heartbeats carry health; results and enrolments are bounded like events, except that an
#: enrolment carries up to 50 templates of up to 1,024 floats and photos (which we drop).
MAX_STATUS_BYTES = 64 * 1024
MAX_RESULT_BYTES = 64 * 1024
MAX_ROSTER_REQUEST_BYTES = 8 * 1024

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


Word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
ShortWord = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,32}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable)]
LongText = Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)]
Path300 = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(_printable)]
Seq = Annotated[int, Field(ge=1, lt=SAFE_INT)]
#: Station clocks are ISO-8601 strings with an offset; lax here only so the JSON string is parsed.
Stamp = Annotated[AwareDatetime, Field(strict=False)]
RefId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,48}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
EnrolmentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,36}$")]


class Refusal(Exception):
    """A message the centre will not store. `reason` is a stable word (metric label, log field)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail[:300]


class _Up(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)

    station_id: Identifier


class EventIn(_Up):
    type: Literal["event"]
    seq: Seq
    id: EventId
    ts: Stamp
    kind: Word
    method: ShortWord | None = None
    member_id: Identifier | None = None
    reason: Text | None = None
    details: dict[str, Any] = {}
    snapshot: Path300 | None = None
    latency_ms: Annotated[float, Field(ge=0.0, le=86_400_000.0)] | None = None


class StatusIn(_Up):
    type: Literal["status"]
    state: Literal["online", "offline"]
    ts: Stamp
    health: dict[str, Any] | None = None


class ResultIn(_Up):
    type: Literal["result"]
    ref: RefId | None = None
    ref_type: Word
    ok: bool
    error: Word | None = None
    message: LongText | None = None
    data: dict[str, Any] = {}
    ts: Stamp


class TemplateIn(BaseModel):
    """One template of an enrolment (the contract's TemplateRecord, read leniently)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)

    template_id: TemplateId
    model: FaceModelName
    vector: Vector

    @model_validator(mode="after")
    def _dim(self) -> TemplateIn:
        check_model_dim(self.model, len(self.vector))
        return self


class EnrolmentMemberIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)

    member_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_printable)]
    phone: (
        Annotated[str, StringConstraints(min_length=3, max_length=32), AfterValidator(_printable)] | None
    ) = None
    groups: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]], Field(max_length=32)
    ] = []
    kind: MemberKind | None = None
    valid_from: Stamp | None = None
    valid_until: Stamp | None = None
    status: Literal["active", "suspended"] = "active"
    consent_face: bool = False
    consent_cross_station: bool = False
    consent_at: Stamp | None = None


class EnrolmentIn(_Up):
    type: Literal["enrolment"]
    id: EnrolmentId
    seq: Seq
    ts: Stamp
    member: EnrolmentMemberIn | None = None
    templates: Annotated[list[TemplateIn], Field(max_length=50)] = []
    templates_withheld: Annotated[int, Field(ge=0, le=1000)] = 0
    photos_jpeg_b64: Annotated[list[str], Field(max_length=10)] = []


class TemplateRemovalIn(_Up):
    """An installer removed one template on site (docs/mqtt.md, "template removal")."""

    type: Literal["template_removal"]
    id: EnrolmentId
    seq: Seq
    ts: Stamp
    member_id: Identifier
    template_id: TemplateId
    removed_by: (
        Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_printable)] | None
    ) = None


class FaceModelIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    name: FaceModelName
    dim: Annotated[int, Field(ge=64, le=1024)]


class RosterRequestIn(_Up):
    type: Literal["roster_request"]
    id: RequestId
    have_version: Annotated[int, Field(ge=0, lt=SAFE_INT)]
    reason: Word
    ts: Stamp
    face_model: FaceModelIn | None = None


class SnapshotMetaIn(BaseModel):
    """The user properties of `up/snapshot/<event_id>` (strings on the wire, docs/mqtt.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)

    station_id: Identifier
    seq: Seq
    event_id: EventId
    bytes: Annotated[int, Field(ge=1)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


UpMessage = EventIn | StatusIn | ResultIn | EnrolmentIn | RosterRequestIn | TemplateRemovalIn

_MODELS: dict[str, tuple[type[BaseModel], int]] = {
    "event": (EventIn, MAX_EVENT_BYTES),
    "status": (StatusIn, MAX_STATUS_BYTES),
    "result": (ResultIn, MAX_RESULT_BYTES),
    "enrolment": (EnrolmentIn, 0),  # bounded by [mqtt] max_payload_bytes
    "roster_request": (RosterRequestIn, MAX_ROSTER_REQUEST_BYTES),
    "template_removal": (TemplateRemovalIn, MAX_ROSTER_REQUEST_BYTES),
}


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for item in exc.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_json_message(kind: str, station_id: str, raw: bytes, max_bytes: int) -> UpMessage:
    """A JSON message of `kind` from the station the topic names, or `Refusal`."""
    model, limit = _MODELS[kind]
    limit = min(limit, max_bytes) if limit else max_bytes
    try:
        data = decode(raw, limit)
    except InboundError as exc:
        raise Refusal(exc.code, str(exc)) from None
    if data.get("type") != kind:
        raise Refusal("unknown_type", f"type {str(data.get('type'))[:40]!r} on up/{kind}")
    if data.get("station_id") != station_id:
        # The broker vouches for the topic, not for the payload: never store under another station.
        raise Refusal("wrong_station", f"payload names {str(data.get('station_id'))[:64]!r}")
    try:
        message = model.model_validate(data)
    except PydanticValidationError as exc:
        raise Refusal("invalid_payload", _describe(exc)) from None
    return message  # type: ignore[return-value]


def parse_snapshot_meta(station_id: str, event_id: str, properties: dict[str, str]) -> SnapshotMetaIn:
    """The snapshot's user properties, which must name the topic's station and event."""
    try:
        meta = SnapshotMetaIn.model_validate(properties)
    except PydanticValidationError as exc:
        raise Refusal("invalid_payload", _describe(exc)) from None
    if meta.station_id != station_id:
        raise Refusal("wrong_station", f"snapshot properties name {meta.station_id!r}")
    if meta.event_id != event_id:
        raise Refusal("invalid_payload", "snapshot properties name another event than the topic")
    return meta
