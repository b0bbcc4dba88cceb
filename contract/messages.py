"""The payloads of contract version 1 (docs/mqtt.md): one pydantic model per message.

Inbound messages (the centre's roster changes and commands) are parsed by `parse_roster` and
`parse_command`, which are strict: the size is checked before anything is read, JSON is parsed
with NaN / Infinity and duplicate keys refused, the version must be 1, types are not coerced
("5" is not 5), strings and lists are bounded, unknown fields are errors. Anything else raises
`InboundError` with a stable `code` for the error result; nothing half-parsed ever reaches the
store. Outbound models document what the station sends and keep it JSON-clean.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from contract.schedule import ScheduleConfig
from contract.signing import SignatureError

PROTOCOL_VERSION = 1
TS_MAX = 253_402_300_799.0  # 9999-12-31T23:59:59Z
#: The face models this contract knows the embedding size of. A template names its model; a
#: station stores only templates of the model it runs (docs/mqtt.md, "Face models").
DLIB_MODEL = "dlib_resnet_v1"
KNOWN_MODEL_DIMS: dict[str, int] = {DLIB_MODEL: 128}
VECTOR_DIM = KNOWN_MODEL_DIMS[DLIB_MODEL]  # dlib's, the default model
VECTOR_DIM_MIN = 64
VECTOR_DIM_MAX = 1024
VECTOR_COMPONENT_MAX = 100.0
SAFE_INT = 2**53  # RFC 8785 (signatures) and JavaScript hold integers exactly below this
MAX_ACK_RANGES = 1000
MAX_OPS = 1000
MAX_SNAPSHOT_PARTS = 1000
MAX_SNAPSHOT_MEMBERS_PER_PART = 5000
MAX_TEMPLATES_PER_MEMBER = 50
ERROR_TEXT_MAX = 500

MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,48}$")]


def _not_dots(value: str) -> str:
    if value in {".", ".."}:
        raise ValueError("an id cannot be '.' or '..'")
    return value


Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$"), AfterValidator(_not_dots)]
TemplateId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
EventId = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
NonceHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,128}$")]
PublicKeyB64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}=$")]  # 32 raw bytes
Text100 = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
UnixTime = Annotated[float, Field(ge=0.0, le=TS_MAX)]
Component = Annotated[float, Field(ge=-VECTOR_COMPONENT_MAX, le=VECTOR_COMPONENT_MAX)]
Vector = Annotated[list[Component], Field(min_length=VECTOR_DIM_MIN, max_length=VECTOR_DIM_MAX)]
#: `dlib_resnet_v1`, `onnx-<sha256 prefix of the model file>`: lowercase, digits, `.`, `_`, `-`.
FaceModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}$")]
SignatureB64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]  # 64 raw bytes
RosterRequestReason = Literal["connect", "new", "gap", "invalid", "reload", "pull", "model"]
StationState = Literal["online", "offline"]
MemberKind = Literal["courier", "rider", "sanitation", "driver", "other"]


class InboundError(ValueError):
    """A message from the centre that is refused; `code` goes into the error result."""

    def __init__(self, code: str, message: str, *, ref: str | None = None, ref_type: str | None = None):
        super().__init__(message)
        self.code = code
        self.ref = ref
        self.ref_type = ref_type


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- roster: centre to station ----------------------------------------------------------------------


class Signature(_In):
    """`sig` of a message signed by the centre (contract.signing): Ed25519 over the RFC 8785
    canonical JSON of the message without `sig`."""

    kid: KeyId
    alg: Literal["ed25519"]
    value: SignatureB64


class FaceModelInfo(_In):
    """A face model: its name and embedding length (what a station runs, what a template is from)."""

    name: FaceModelName
    dim: Annotated[int, Field(ge=VECTOR_DIM_MIN, le=VECTOR_DIM_MAX)]

    @model_validator(mode="after")
    def _known_dim(self) -> FaceModelInfo:
        check_model_dim(self.name, self.dim)
        return self


def check_model_dim(model: str, dim: int) -> None:
    """A known model's vectors have its dimension; others any length in [VECTOR_DIM_MIN, MAX]."""
    expected = KNOWN_MODEL_DIMS.get(model)
    if expected is not None and dim != expected:
        raise ValueError(f"model {model!r} has {expected}-d embeddings, got {dim}")
    if not VECTOR_DIM_MIN <= dim <= VECTOR_DIM_MAX:
        raise ValueError(f"embedding length {dim} is outside [{VECTOR_DIM_MIN}, {VECTOR_DIM_MAX}]")


class TemplateRecord(_In):
    """One face encoding of one face model. Ids are 32 hex characters; a template uploaded from a
    station keeps the id it had there, so the round trip station -> centre -> station never
    duplicates it. `model` names the encoder (`dlib_resnet_v1`, `onnx-<hash>`): vectors of two
    models are not comparable, so a station stores only templates of the model it runs."""

    template_id: TemplateId
    model: FaceModelName
    vector: Vector

    @model_validator(mode="after")
    def _dim(self) -> TemplateRecord:
        check_model_dim(self.model, len(self.vector))
        return self


class MemberFields(_In):
    """The fields of a member that a change may set; only those present are applied."""

    name: Text100 | None = None
    phone: Annotated[str, StringConstraints(min_length=3, max_length=32)] | None = None
    groups: Annotated[list[GroupName], Field(max_length=32)] | None = None
    kind: MemberKind | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    status: Literal["active", "suspended"] | None = None
    consent_face: bool | None = None
    consent_cross_station: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> MemberFields:
        if not self.model_fields_set:
            raise ValueError("fields must set at least one field")
        for required in ("name", "status", "consent_face", "consent_cross_station", "groups"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class MemberRecord(_In):
    """A whole member as the centre knows it (add_member and full snapshots)."""

    member_id: Identifier
    name: Text100
    phone: Annotated[str, StringConstraints(min_length=3, max_length=32)] | None = None
    groups: Annotated[list[GroupName], Field(max_length=32)] = []
    kind: MemberKind | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    status: Literal["active", "suspended"] = "active"
    consent_face: bool = False
    consent_cross_station: bool = False
    templates: Annotated[list[TemplateRecord], Field(max_length=MAX_TEMPLATES_PER_MEMBER)] = []

    @model_validator(mode="after")
    def _consent(self) -> MemberRecord:
        if self.templates and not self.consent_face:
            raise ValueError("templates given for a member without consent_face")
        if len({t.template_id for t in self.templates}) != len(self.templates):
            raise ValueError("duplicate template_id")
        return self

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude={"member_id", "templates"})


class QrKeyRecord(_In):
    kid: Identifier
    public_key: PublicKeyB64
    label: Annotated[str, StringConstraints(max_length=100)] = ""


class TokenRevocation(_In):
    nonce_hex: NonceHex
    member_id: Identifier | None = None
    expires_at: Annotated[int, Field(ge=0, lt=2**53)]
    reason: Text200 = "revoked by the centre"


class AddMember(_In):
    op: Literal["add_member"]
    member: MemberRecord


class UpdateMember(_In):
    op: Literal["update_member"]
    member_id: Identifier
    fields: MemberFields


class SuspendMember(_In):
    op: Literal["suspend_member"]
    member_id: Identifier


class ActivateMember(_In):
    op: Literal["activate_member"]
    member_id: Identifier


class RemoveMember(_In):
    op: Literal["remove_member"]
    member_id: Identifier


class AddTemplate(_In):
    op: Literal["add_template"]
    member_id: Identifier
    template: TemplateRecord


class RemoveTemplate(_In):
    op: Literal["remove_template"]
    member_id: Identifier
    template_id: TemplateId


class AddQrKey(_In):
    op: Literal["add_qr_key"]
    key: QrKeyRecord


class RevokeQrKey(_In):
    op: Literal["revoke_qr_key"]
    kid: Identifier


class RevokeToken(_In):
    op: Literal["revoke_token"]
    revocation: TokenRevocation


class CentreKeyRecord(_In):
    """A key the centre signs its messages with (docs/mqtt.md, "Signatures")."""

    kid: KeyId
    public_key: PublicKeyB64
    label: Annotated[str, StringConstraints(max_length=100)] = ""


class AddCentreKey(_In):
    """Trust another centre signing key (rotation: add the new key, sign with it, revoke the old)."""

    op: Literal["add_centre_key"]
    key: CentreKeyRecord


class RevokeCentreKey(_In):
    """Stop trusting a centre signing key (refused if it would leave the station with none)."""

    op: Literal["revoke_centre_key"]
    kid: KeyId


RosterOp = Annotated[
    AddMember
    | UpdateMember
    | SuspendMember
    | ActivateMember
    | RemoveMember
    | AddTemplate
    | RemoveTemplate
    | AddQrKey
    | RevokeQrKey
    | RevokeToken
    | AddCentreKey
    | RevokeCentreKey,
    Field(discriminator="op"),
]


class _Down(_In):
    """What every centre-to-station message may carry: the station it is for and a signature.

    `station_id` is required in signed messages (the signature binds the message to one station);
    when present it must be the receiving station's id (`wrong_station` otherwise)."""

    station_id: Identifier | None = None
    sig: Signature | None = None


class RosterChange(_Down):
    """Version N of this station's roster: applied in one transaction, only right after N-1."""

    v: Literal[1]
    type: Literal["roster_change"]
    id: MessageId
    version: Annotated[int, Field(ge=1, lt=SAFE_INT)]
    issued_at: UnixTime
    ops: Annotated[list[RosterOp], Field(min_length=1, max_length=MAX_OPS)]


class RosterSnapshotPart(_Down):
    """One part of a full resync: the whole roster at `version`, applied once all parts are in."""

    v: Literal[1]
    type: Literal["roster_snapshot"]
    id: MessageId
    snapshot_id: MessageId
    version: Annotated[int, Field(ge=1, lt=SAFE_INT)]
    issued_at: UnixTime
    part: Annotated[int, Field(ge=1, le=MAX_SNAPSHOT_PARTS)]
    parts: Annotated[int, Field(ge=1, le=MAX_SNAPSHOT_PARTS)]
    members: Annotated[list[MemberRecord], Field(max_length=MAX_SNAPSHOT_MEMBERS_PER_PART)] = []
    qr_keys: Annotated[list[QrKeyRecord], Field(max_length=100)] = []
    revoked_kids: Annotated[list[Identifier], Field(max_length=1000)] = []
    revoked_tokens: Annotated[list[TokenRevocation], Field(max_length=100_000)] = []

    @model_validator(mode="after")
    def _part_in_range(self) -> RosterSnapshotPart:
        if self.part > self.parts:
            raise ValueError(f"part {self.part} of {self.parts}")
        return self


class RosterStatus(_Down):
    """ "Your roster is current at `version`": the centre's latest roster version for this station.

    The centre sends it on `down/roster` after the changes or the snapshot that answer a roster
    request (`request_id` = that request's `id`), so it arrives after them (one publisher, one
    topic, QoS 1: MQTT keeps the order). A station whose applied version is at least `version` is
    current (`yizhan sync pull` exits 0); one below it asks again (reason `gap`)."""

    v: Literal[1]
    type: Literal["roster_status"]
    id: MessageId
    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    version: Annotated[int, Field(ge=0, lt=SAFE_INT)]
    issued_at: UnixTime


RosterMessage = Annotated[RosterChange | RosterSnapshotPart | RosterStatus, Field(discriminator="type")]

Seq = Annotated[int, Field(ge=1, lt=SAFE_INT)]


class OutboxAck(_Down):
    """The centre has committed these outbox messages of this station to its database (`down/ack`).

    `stored` lists inclusive `[first, last]` ranges of the station's outbox `seq`s that the centre
    has stored, and only those (never merged across a gap: a missing seq may still come). A station that
    receives acks treats them as the delivery rule: a message is delivered when the centre has it
    stored, not when the broker said PUBACK (`[mqtt] delivery`, docs/mqtt.md).
    """

    v: Literal[1]
    type: Literal["ack"]
    id: MessageId
    stored: Annotated[list[tuple[Seq, Seq]], Field(min_length=1, max_length=MAX_ACK_RANGES)]

    @model_validator(mode="after")
    def _ordered(self) -> OutboxAck:
        for first, last in self.stored:
            if first > last:
                raise ValueError(f"range [{first}, {last}] is backwards")
        return self

    @property
    def highest(self) -> int:
        return max(last for _, last in self.stored)


# -- commands: centre to station --------------------------------------------------------------------


class _Command(_Down):
    v: Literal[1]
    type: Literal["command"]
    id: MessageId
    issued_at: UnixTime
    expires_at: UnixTime
    by: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _order(self) -> _Command:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be later than issued_at")
        return self


class OpenCommand(_Command):
    """Open the door for `seconds` (default: the relay's unlock_s), optionally for a member."""

    name: Literal["open"]
    seconds: Annotated[float, Field(gt=0.0, le=600.0)] | None = None
    member_id: Identifier | None = None


class ReloadCommand(_Command):
    """Rebuild the roster from the database and ask the centre for anything missed."""

    name: Literal["reload"]


class SetScheduleCommand(_Command):
    """Replace the opening hours (kept across restarts until replaced again)."""

    name: Literal["set_schedule"]
    schedule: ScheduleConfig


class SnapshotCommand(_Command):
    """Take a picture now: recorded as a `remote_snapshot` event, the JPEG follows on up/snapshot."""

    name: Literal["snapshot"]


class PingCommand(_Command):
    name: Literal["ping"]


Command = Annotated[
    OpenCommand | ReloadCommand | SetScheduleCommand | SnapshotCommand | PingCommand,
    Field(discriminator="name"),
]


# -- station to centre ------------------------------------------------------------------------------


class EventMessage(_Out):
    """An access-log event (`up/event`). `id` is the event's UUID: the centre deduplicates on it."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    v: Literal[1] = 1
    type: Literal["event"] = "event"
    station_id: str
    seq: int
    id: EventId
    ts: str
    ts_wall: float
    ts_mono: float
    kind: str
    method: str | None
    member_id: str | None
    reason: str | None = None
    details: dict[str, Any] = {}
    snapshot: str | None = None
    latency_ms: float | None = None


class SnapshotMeta(_Out):
    """Sent as MQTT v5 user properties of `up/snapshot/<event_id>`; the payload is the JPEG."""

    v: Literal[1] = 1
    station_id: str
    seq: int
    event_id: EventId
    bytes: int
    sha256: str


class EnrolmentTemplate(_Out):
    template_id: str
    model: str
    vector: list[float]


class EnrolmentMember(_Out):
    member_id: str
    name: str
    phone: str | None
    groups: list[str]
    kind: str | None
    valid_from: str | None
    valid_until: str | None
    status: str
    consent_face: bool
    consent_cross_station: bool
    consent_at: str | None


class EnrolmentMessage(_Out):
    """A member enrolled on site (`up/enrolment`). Templates (and, if configured, photos) are in
    it only when the member consented to cross-station use; otherwise `templates_withheld` says
    how many stayed on the station. `member` is null when the member was removed meanwhile."""

    v: Literal[1] = 1
    type: Literal["enrolment"] = "enrolment"
    id: str
    station_id: str
    seq: int
    ts: str
    member: EnrolmentMember | None
    templates: list[EnrolmentTemplate] = []
    templates_withheld: int = 0
    photos_jpeg_b64: list[str] = []


class TemplateRemovalMessage(_Out):
    """An installer removed one face template on site (`up/template_removal`).

    A template of a member with cross-station consent went to the centre and from there to every
    station the member may enter; removing it at one station must withdraw it everywhere, or a
    photo of the wrong person removed here keeps opening the door at the next station. Sent
    reliably like events (acknowledged after the centre's commit); `id` deduplicates re-sends."""

    v: Literal[1] = 1
    type: Literal["template_removal"] = "template_removal"
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,36}$")]
    station_id: str
    seq: int
    ts: str
    member_id: Identifier
    template_id: TemplateId
    removed_by: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


class ResultMessage(_Out):
    """The answer to a command or a roster message (`up/result`); `ref` is its id when known."""

    v: Literal[1] = 1
    type: Literal["result"] = "result"
    station_id: str
    ref: str | None
    ref_type: Literal["command", "roster_change", "roster_snapshot", "roster_status", "ack", "unknown"]
    ok: bool
    error: str | None = None
    message: str | None = None
    data: dict[str, Any] = {}
    ts: str


class StatusMessage(_Out):
    """Retained on `up/status`: "online" with health on every heartbeat; the broker publishes the
    last will ("offline", no health) when the station vanishes."""

    v: Literal[1] = 1
    type: Literal["status"] = "status"
    station_id: str
    state: StationState
    ts: str
    health: dict[str, Any] | None = None


class RosterRequest(_Out):
    """Ask the centre for roster changes after `have_version`, or a full snapshot (`up/roster_request`)."""

    v: Literal[1] = 1
    type: Literal["roster_request"] = "roster_request"
    station_id: str
    id: str
    have_version: int
    reason: RosterRequestReason
    ts: str
    #: the face model the station runs: send it templates of this model only
    face_model: dict[str, Any] | None = None


# -- parsing ----------------------------------------------------------------------------------------


_REF = re.compile(r"[A-Za-z0-9._-]{1,48}")
_ROSTER = TypeAdapter(RosterMessage)
_COMMAND = TypeAdapter(Command)
_ACK = TypeAdapter(OutboxAck)


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]!r} is out of range")
    return value


#: One decoder for every message (`json.loads` with hooks builds a new one per call: the centre
#: reads thousands of messages a second).
_STRICT_JSON = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def decode(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Size, UTF-8, strict JSON, an object, version 1: the checks every inbound message passes first."""
    if len(raw) > max_bytes:
        raise InboundError("too_large", f"payload is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        data = _STRICT_JSON.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InboundError("invalid_json", f"not strict JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise InboundError("invalid_payload", f"expected a JSON object, got {type(data).__name__}")
    ref = message_ref(data)
    ref_type = (
        data.get("type")
        if data.get("type") in ("roster_change", "roster_snapshot", "roster_status", "command", "ack")
        else None
    )
    version = data.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # 1.0 and true are not 1
        raise InboundError(
            "unsupported_version",
            f"contract version {version!r:.40} is not supported (this station speaks v{PROTOCOL_VERSION})",
            ref=ref,
            ref_type=ref_type,
        )
    return data


def message_ref(data: dict[str, Any]) -> str | None:
    """The message's `id` if it is a well-formed one (echoed in the result), else None."""
    value = data.get("id")
    return value if isinstance(value, str) and _REF.fullmatch(value) else None


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for item in exc.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    more = exc.error_count() - len(parts)
    text = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return text[:ERROR_TEXT_MAX]


Verifier = Callable[[dict[str, Any]], None]
"""Called with the decoded JSON object before the model reads it (the station's signature and
station-id check); raises `SignatureError` (or `InboundError`) to refuse the message."""


def _verified(data: dict[str, Any], verify: Verifier | None, ref: str | None, ref_type: str | None) -> None:
    if verify is None:
        return
    try:
        verify(data)
    except SignatureError as exc:
        raise InboundError(exc.code, str(exc), ref=ref, ref_type=ref_type) from None


def parse_roster(
    raw: bytes, max_bytes: int, verify: Verifier | None = None
) -> RosterChange | RosterSnapshotPart | RosterStatus:
    """A roster change, snapshot part or roster status from `down/roster`, or `InboundError`."""
    data = decode(raw, max_bytes)
    ref = message_ref(data)
    kind = data.get("type")
    if kind not in ("roster_change", "roster_snapshot", "roster_status"):
        raise InboundError("unknown_type", f"type {kind!r:.40} is not a roster message", ref=ref)
    _verified(data, verify, ref, str(kind))
    try:
        return _ROSTER.validate_json(raw, strict=True)
    except PydanticValidationError as exc:
        raise InboundError("invalid_payload", _describe(exc), ref=ref, ref_type=str(kind)) from None


def parse_command(raw: bytes, max_bytes: int, verify: Verifier | None = None) -> Command:
    """A command from `down/command`, or `InboundError` (expiry and replay are checked later)."""
    data = decode(raw, max_bytes)
    ref = message_ref(data)
    if data.get("type") != "command":
        raise InboundError("unknown_type", f"type {data.get('type')!r:.40} is not a command", ref=ref)
    _verified(data, verify, ref, "command")
    try:
        command: Command = _COMMAND.validate_json(raw, strict=True)
    except PydanticValidationError as exc:
        raise InboundError("invalid_payload", _describe(exc), ref=ref, ref_type="command") from None
    return command


def parse_ack(raw: bytes, max_bytes: int, verify: Verifier | None = None) -> OutboxAck:
    """An outbox acknowledgement from `down/ack`, or `InboundError`."""
    data = decode(raw, max_bytes)
    ref = message_ref(data)
    if data.get("type") != "ack":
        raise InboundError("unknown_type", f"type {data.get('type')!r:.40} is not an ack", ref=ref)
    _verified(data, verify, ref, "ack")
    try:
        ack: OutboxAck = _ACK.validate_json(raw, strict=True)
    except PydanticValidationError as exc:
        raise InboundError("invalid_payload", _describe(exc), ref=ref, ref_type="ack") from None
    return ack
