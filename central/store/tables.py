"""The centre's tables (SQLAlchemy 2 typed declarative mapping); docs/CENTRAL.md explains the design.

This module describes the *current* schema. Every change here needs an Alembic revision under
`central/migrations/versions/` (see docs/CENTRAL.md, "Adding a migration"); a test compares the
migrated database with this metadata on SQLite and PostgreSQL, so the two cannot drift apart.

Conventions:
* Datetimes are `UtcDateTime` (timestamptz on PostgreSQL, naive-UTC text on SQLite; aware in Python).
* Ids that come from the contract keep its limits: station and member ids 1-64 of `A-Za-z0-9._-`,
  template ids 32 hex characters, event ids UUID text (36).
* Lists and small documents are JSON (`JSONB` on PostgreSQL).
* Nothing here holds a secret in clear: face templates and signing private keys are AES-GCM ciphertext
  under the data key (`common.template_cipher`), staff passwords are argon2id hashes.
* `events` is partitioned by month on PostgreSQL (`central.store.partitions`); its primary key is
  (id, ts) because a partitioned table's unique keys must contain the partition key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import JSON

from common.db_types import UtcDateTime, utc_now

ID_MAX = 64
EVENT_ID_LEN = 36
TEMPLATE_ID_LEN = 32

#: JSON everywhere, JSONB on PostgreSQL (indexable, compact, no duplicate keys kept).
Json = JSON().with_variant(JSONB(), "postgresql")
#: Auto-incrementing 64-bit keys (INTEGER on SQLite, where only INTEGER PRIMARY KEY is the rowid).
BigId = BigInteger().with_variant(Integer(), "sqlite")

MEMBER_KINDS = ("courier", "rider", "sanitation", "driver", "other")
MEMBER_STATUSES = ("active", "suspended", "pending")
STAFF_ROLES = ("admin", "district", "viewer")
ALARM_SEVERITIES = ("emergency", "critical", "warning")
ALARM_STATES = ("open", "acknowledged")
KEY_STATES = ("active", "retiring", "revoked")
KEY_PURPOSES = ("qr", "messages")
COMMAND_STATES = ("pending", "sent", "ok", "failed", "expired")
REGISTRATION_STATES = ("code_sent", "awaiting_staff", "approved", "rejected", "expired")
CODE_PURPOSES = ("register", "login")
PHONE_OPEN_OUTCOMES = ("sent", "opened", "refused", "no_answer", "offline", "denied")
ALARM_CHANNELS = ("wecom", "dingtalk", "feishu", "email")
DELIVERY_PURPOSES = ("raised", "again", "escalated", "cleared", "acknowledged", "reminder")
DELIVERY_OUTCOMES = ("sent", "failed", "skipped")
#: The station's event kinds the alarm rules read (central.alarms.rules.EVENT_KINDS plus refusals;
#: a test keeps the two lists equal). Changing it needs a migration of the partial index.
ALARM_EVENT_KINDS = (
    "camera_down",
    "camera_up",
    "door_closed_after_held",
    "door_forced",
    "door_held_open",
    "emergency",
    "lockout",
    "refused",
    "tamper",
)

# Constraint names follow one convention, so Alembic revisions can name them on both databases.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


ALARM_EVENT_KINDS_SQL = _in("kind", ALARM_EVENT_KINDS)


class Base(DeclarativeBase):
    """Declarative base of all centre tables."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: Json, list[str]: Json, list[Any]: Json, dt.datetime: UtcDateTime()}


# -- the fleet --------------------------------------------------------------------------------------


class District(Base):
    """A union district: the unit of staff scoping, alarm routing and registration policy."""

    __tablename__ = "districts"

    district_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    registration_approval: Mapped[str] = mapped_column(String(16), default="staff")
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)

    __table_args__ = (CheckConstraint(_in("registration_approval", ("auto", "staff")), name="approval"),)


class Station(Base):
    """A rest station: where it is, when it opens, who may enter, and its last known health.

    The `last_*` columns and `applied_version` are the latest status (one row per station, updated
    in place) so the dashboard's fleet view is one indexed read; the history is in `station_status`.
    `issued_version` is the last roster change version the centre numbered for this station
    (incremented in the same transaction that writes the change, so versions have no gaps).
    `face_model` is the model the station announced in its last roster request (it gets only
    templates of that model); `roster_basis` is what decided which members it holds when its roster
    was last changed (groups admitted, model, active), so a station edit can be turned into the
    exact ops that follow from it (central/roster).
    """

    __tablename__ = "stations"

    station_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.district_id"), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    schedule: Mapped[dict[str, Any]] = mapped_column(default=lambda: {"always_open": True})
    services: Mapped[list[str]] = mapped_column(default=list)
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    allowed_groups: Mapped[list[str]] = mapped_column(default=list)
    require_location_m: Mapped[int | None] = mapped_column(Integer)
    broker_username: Mapped[str | None] = mapped_column(String(ID_MAX), unique=True)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    issued_version: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_version: Mapped[int | None] = mapped_column(BigInteger)
    last_state: Mapped[str] = mapped_column(String(16), default="unknown")
    last_seen_at: Mapped[dt.datetime | None] = mapped_column()
    last_status_at: Mapped[dt.datetime | None] = mapped_column()
    last_health: Mapped[dict[str, Any] | None] = mapped_column(Json)
    last_ack_seq: Mapped[int | None] = mapped_column(BigInteger)
    face_model: Mapped[str | None] = mapped_column(String(64))
    roster_basis: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    __table_args__ = (
        CheckConstraint("latitude IS NULL OR (latitude BETWEEN -90 AND 90)", name="latitude"),
        CheckConstraint("longitude IS NULL OR (longitude BETWEEN -180 AND 180)", name="longitude"),
        CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="coordinates"),
        CheckConstraint(_in("last_state", ("online", "offline", "unknown")), name="last_state"),
        CheckConstraint("require_location_m IS NULL OR require_location_m > 0", name="location_m"),
    )


class StationStatus(Base):
    """Status history: every `up/status` that changed something, and heartbeats at a bounded rate.

    Written by ingest; pruned by age (the alarms engineer's retention). Latest values also go to
    the `stations` row.
    """

    __tablename__ = "station_status"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    ts: Mapped[dt.datetime] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    health: Mapped[dict[str, Any] | None] = mapped_column(Json)

    __table_args__ = (
        Index("ix_station_status_station_received", "station_id", "received_at"),
        CheckConstraint(_in("state", ("online", "offline")), name="state"),
    )


# -- the roster -------------------------------------------------------------------------------------


class Member(Base):
    """A worker who may enter stations. Consents carry the time they were given or withdrawn.

    `home_station_id` is where the member's face was enrolled: templates without cross-station
    consent stay there. `status = 'pending'` is a registration from a phone waiting for approval.
    Erasing a member deletes this row (templates cascade) and writes an `erasures` row without
    the personal data.
    """

    __tablename__ = "members"

    member_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str | None] = mapped_column(String(16))
    employer: Mapped[str | None] = mapped_column(String(200))
    groups: Mapped[list[str]] = mapped_column(default=list)
    valid_from: Mapped[dt.datetime | None] = mapped_column()
    valid_until: Mapped[dt.datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="active")
    consent_face: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_face_at: Mapped[dt.datetime | None] = mapped_column()
    consent_cross_station: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_cross_station_at: Mapped[dt.datetime | None] = mapped_column()
    home_station_id: Mapped[str | None] = mapped_column(
        ForeignKey("stations.station_id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(16), default="staff")
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="member", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint(_in("status", MEMBER_STATUSES), name="status"),
        CheckConstraint(f"kind IS NULL OR {_in('kind', MEMBER_KINDS)}", name="kind"),
        CheckConstraint(_in("source", ("staff", "cli", "station", "phone")), name="source"),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from", name="validity"
        ),
        CheckConstraint("consent_cross_station = false OR consent_face = true", name="consents"),
    )


class FaceTemplate(Base):
    """One face encoding, encrypted under the data key; the model that made it is named.

    Which stations may hold it: `scope = 'fleet'` (the member gave cross-station consent) means
    every station the member may enter; `scope = 'station'` means `origin_station_id` only. The
    roster code keeps `scope` in step with the member's consent.
    """

    __tablename__ = "face_templates"

    template_id: Mapped[str] = mapped_column(String(TEMPLATE_ID_LEN), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(64), default="dlib_resnet_v1")
    dim: Mapped[int] = mapped_column(Integer, default=128)
    key_fingerprint: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    scope: Mapped[str] = mapped_column(String(16), default="station")
    origin_station_id: Mapped[str | None] = mapped_column(
        ForeignKey("stations.station_id", ondelete="SET NULL"), index=True
    )
    quality: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)

    member: Mapped[Member] = relationship(back_populates="templates")

    __table_args__ = (
        CheckConstraint(_in("scope", ("station", "fleet")), name="scope"),
        CheckConstraint("scope = 'fleet' OR origin_station_id IS NOT NULL", name="origin"),
        CheckConstraint("dim BETWEEN 1 AND 4096", name="dim"),
    )


class RosterPublished(Base):
    """A member as the stations were last told (one row per member, not per station).

    `state` holds the member's fields and template list (ids, model, scope, origin: never
    vectors) as of the last fan-out. A change to the member is turned into roster ops per station
    by comparing what this state and the current one make that station hold (central/roster),
    so the centre needs no per-station copy of the roster (2,000 stations x 100,000 members would
    be 200 million rows). Written in the same transaction as the member change and its
    `roster_changes` rows.
    """

    __tablename__ = "roster_published"

    member_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class SigningKey(Base):
    """An Ed25519 key of the centre. Only the centre holds private keys (sealed with the data key).

    `purpose`: `qr` signs member passes (stations check them offline, `add_qr_key` /
    `revoke_qr_key`); `messages` signs what the centre publishes on `down/` (docs/mqtt.md,
    "Signatures": `add_centre_key` / `revoke_centre_key`). `active`: signs (one per purpose).
    `retiring`: no longer signs, still trusted by the stations until `trusted_until` (for a QR key,
    until the longest pass it may have signed expires). `revoked`: no longer trusted.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    key_fingerprint: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    retired_at: Mapped[dt.datetime | None] = mapped_column()
    trusted_until: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("state", KEY_STATES), name="state"),
        CheckConstraint(_in("purpose", KEY_PURPOSES), name="purpose"),
        # One active key per purpose: a partial unique index (SQLite and PostgreSQL both have them).
        Index(
            "uq_signing_keys_one_active",
            "purpose",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )


class QrRevocation(Base):
    """One revoked pass (by nonce), sent to every station until the pass would have expired."""

    __tablename__ = "qr_revocations"

    nonce_hex: Mapped[str] = mapped_column(String(128), primary_key=True)
    member_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class RosterChange(Base):
    """One `down/roster` change for one station, numbered 1, 2, 3, ... per station (docs/mqtt.md).

    A staff action that affects many stations writes one row per affected station, all in one
    transaction with the station's `issued_version` bump and the roster data itself. `change_id`
    is the message id; the station's `up/result` (by `ref`) lands in `results`.
    """

    __tablename__ = "roster_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(BigInteger)
    change_id: Mapped[str] = mapped_column(String(48), unique=True)
    ops: Mapped[list[Any]] = mapped_column()
    cause: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    sent_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("station_id", "version"),
        Index("ix_roster_changes_unsent", "sent_at", "id"),
        CheckConstraint("version >= 1", name="version"),
    )


# -- what the stations send -------------------------------------------------------------------------


class Event(Base):
    """An access-log event from a station, stored once (idempotent on its id; see the module doc).

    `ts` is the station's time of the event (the partition key on PostgreSQL), `received_at` when
    the centre stored it. `member_id` has no foreign key: the log outlives a member's erasure.
    """

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(primary_key=True)
    station_id: Mapped[str] = mapped_column(String(ID_MAX))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(32))
    member_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    reason: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snapshot: Mapped[str | None] = mapped_column(String(300))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[dt.datetime] = mapped_column(default=utc_now)

    __table_args__ = (
        Index("ix_events_ts", "ts"),
        Index("ix_events_station_ts", "station_id", "ts"),
        Index("ix_events_member_ts", "member_id", "ts"),
        # What arrived since a moment, whatever the station's clock said: the dashboard's live
        # feed polls it (ingest may run in another process) and replays it after a reconnect.
        Index("ix_events_received_at", "received_at"),
        # The alarm engine's sweep reads recently *received* events of the kinds that raise alarms
        # (a partial index: a few rows per thousand, whatever the fleet's volume of entries).
        Index(
            "ix_events_alarm_kinds_received",
            "received_at",
            sqlite_where=text(ALARM_EVENT_KINDS_SQL),
            postgresql_where=text(ALARM_EVENT_KINDS_SQL),
        ),
        {"postgresql_partition_by": "RANGE (ts)"},
    )


class Snapshot(Base):
    """The JPEG of an event, stored under <data_dir>/snapshots/<date>/; the row keeps the path.

    `deleted_at` is set when retention or the disk budget removed the file (the row stays, so the
    dashboard can say "expired" instead of showing a broken image).
    """

    __tablename__ = "snapshots"

    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), primary_key=True)
    event_ts: Mapped[dt.datetime] = mapped_column()
    station_id: Mapped[str] = mapped_column(String(ID_MAX))
    path: Mapped[str] = mapped_column(String(300))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utc_now, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (Index("ix_snapshots_station_event_ts", "station_id", "event_ts"),)


class Enrolment(Base):
    """An on-site enrolment a station uploaded (`up/enrolment`), stored once per enrolment id."""

    __tablename__ = "enrolments"

    id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id", ondelete="CASCADE"), index=True)
    member_id: Mapped[str | None] = mapped_column(String(ID_MAX), index=True)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    ts: Mapped[dt.datetime] = mapped_column()
    templates_received: Mapped[int] = mapped_column(Integer, default=0)
    templates_withheld: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class TemplateRemoval(Base):
    """A template an installer removed on site (`up/template_removal`), once per template id.

    Kept after the template is gone, for two reasons: a re-sent removal is recognised (idempotent),
    and an enrolment that carried the same template and reaches the centre *after* its removal (two
    ingest workers, one message each) does not bring it back (`central.roster.enrolments`). Ids and
    who did it only: no face data."""

    __tablename__ = "template_removals"

    template_id: Mapped[str] = mapped_column(String(TEMPLATE_ID_LEN), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(ID_MAX), index=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    removed_by: Mapped[str | None] = mapped_column(String(100))
    removed_at: Mapped[dt.datetime] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    held: Mapped[bool] = mapped_column(Boolean, default=False)  # the centre held the template and withdrew it
    stations: Mapped[int] = mapped_column(Integer, default=0)  # stations sent a remove_template


class Command(Base):
    """A command sent to a station (`down/command`), who ordered it and why; its answer is a result.

    `state`: pending (written, not yet taken by the broker), sent, ok / failed (the station's
    answer, or `error = 'station_offline'` when it was never sent), expired (no answer before
    `expires_at`). `error` / `message` / `result` copy the station's `up/result`.
    """

    __tablename__ = "commands"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    issued_by: Mapped[str] = mapped_column(String(100))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(500))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[dt.datetime] = mapped_column()
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_commands_station_issued", "station_id", "issued_at"),
        Index("ix_commands_state_expires", "state", "expires_at"),
        CheckConstraint(_in("state", COMMAND_STATES), name="state"),
    )


class Result(Base):
    """A station's `up/result`: the answer to a command or a roster message, stored once."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id", ondelete="CASCADE"))
    ref: Mapped[str | None] = mapped_column(String(48))
    ref_type: Mapped[str | None] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ts: Mapped[dt.datetime] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column(default=utc_now)

    __table_args__ = (
        UniqueConstraint("station_id", "ref", "ref_type"),
        Index("ix_results_received", "received_at"),
    )


# -- alarms -----------------------------------------------------------------------------------------


class Alarm(Base):
    """Something a person must see: raised by a rule, open until a staff member acknowledges it.

    `dedup_key` (e.g. "station_offline:haidian-012") stops a condition that persists from raising a
    new alarm on every message: at most one open alarm per key (partial unique index).
    `district_id` is copied from the station so scoping needs no join.
    """

    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.station_id", ondelete="SET NULL"))
    district_id: Mapped[str | None] = mapped_column(String(ID_MAX), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")
    dedup_key: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_LEN))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raised_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    cleared_at: Mapped[dt.datetime | None] = mapped_column()
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column()
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(1000))

    notifications: Mapped[list[AlarmNotification]] = relationship(
        back_populates="alarm", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_alarms_state_raised", "state", "raised_at"),
        Index(
            "uq_alarms_open_dedup_key",
            "dedup_key",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        CheckConstraint(_in("severity", ALARM_SEVERITIES), name="severity"),
        CheckConstraint(_in("state", ALARM_STATES), name="state"),
        CheckConstraint(
            "(state = 'acknowledged') = (acknowledged_at IS NOT NULL AND note IS NOT NULL)", name="ack"
        ),
    )


class AlarmNotification(Base):
    """One attempt to tell someone: a webhook post or an e-mail, with how it went."""

    __tablename__ = "alarm_notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(200))
    attempted_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))

    alarm: Mapped[Alarm] = relationship(back_populates="notifications")

    __table_args__ = (CheckConstraint(_in("channel", ALARM_CHANNELS), name="channel"),)


class AlarmEvent(Base):
    """The station events the alarm engine has handled, and the alarm each raised or counted on.

    The engine sees an event on the live bus and again in its database sweep (which exists for the
    event committed just before a crash, never published); this row, written in the same
    transaction as the alarm change, makes the second time a no-op, also across several centre
    processes. Only events of alarm kinds get a row; rows older than the sweep's look-back are
    pruned.
    """

    __tablename__ = "alarm_events"

    station_id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), primary_key=True)
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="SET NULL"), index=True)
    handled_at: Mapped[dt.datetime] = mapped_column(default=utc_now, index=True)


class AlarmDelivery(Base):
    """The notifier's durable queue: one message due about one alarm.

    `channel = 'fanout'` rows say "tell everyone concerned" (`purpose`: raised, again, escalated,
    cleared, acknowledged, reminder); the notifier expands each into one row per configured target
    (a group robot or an e-mail list, `target` is its label, never its URL) in one transaction.
    A row is claimed (`claimed_until`) before it is sent, so several centre processes never send
    it twice at once and a process that dies mid-send leaves it to be retried; a failed attempt
    moves `due_at` later (back-off) until `[alarms] retry_attempts`. Every attempt is also a row of
    `alarm_notifications`. Reminders of an unacknowledged emergency are `reminder` fan-outs with
    their `round`, each scheduling the next.
    """

    __tablename__ = "alarm_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(200), default="")
    due_at: Mapped[dt.datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[dt.datetime | None] = mapped_column()
    done_at: Mapped[dt.datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)

    __table_args__ = (
        Index(
            "ix_alarm_deliveries_pending",
            "due_at",
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ),
        CheckConstraint(_in("purpose", DELIVERY_PURPOSES), name="purpose"),
        CheckConstraint(_in("channel", (*ALARM_CHANNELS, "fanout")), name="channel"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', DELIVERY_OUTCOMES)}", name="outcome"),
        CheckConstraint("(done_at IS NULL) = (outcome IS NULL)", name="done"),
        CheckConstraint("round >= 0 AND attempts >= 0", name="counts"),
    )


# -- people at the centre ---------------------------------------------------------------------------


class Staff(Base):
    """A union staff account. `district` staff see and act on their district's stations only; a
    viewer with a district sees only it, without one the whole fleet; admins have no district."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    district_id: Mapped[str | None] = mapped_column(ForeignKey("districts.district_id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    password_changed_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    last_login_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("role", STAFF_ROLES), name="role"),
        CheckConstraint("role <> 'district' OR district_id IS NOT NULL", name="district_needs_district"),
        CheckConstraint("role <> 'admin' OR district_id IS NULL", name="admin_no_district"),
    )


class AuditEntry(Base):
    """Who did what at the centre: staff actions, CLI commands, phone actions. Append-only by use."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utc_now, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    district_id: Mapped[str | None] = mapped_column(String(ID_MAX), index=True)
    client: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Erasure(Base):
    """That a member was erased, when, by whom and how far it got: never who they were.

    `stations_pending` lists the stations that have not yet confirmed deleting the member's data;
    `completed_at` is set when it is empty.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(ID_MAX), index=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    templates_deleted: Mapped[int] = mapped_column(Integer, default=0)
    snapshots_deleted: Mapped[int] = mapped_column(Integer, default=0)
    stations_pending: Mapped[list[str]] = mapped_column(default=list)
    completed_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("reason", ("member_request", "staff", "consent_withdrawn")), name="reason"),
    )


# -- workers' phones (issue 11) ---------------------------------------------------------------------


class Registration(Base):
    """A worker registering from a phone at a station's poster, until it is decided.

    Before the phone number is confirmed by an SMS code, what the worker typed waits in `details`
    (no member exists yet: an unconfirmed number must not become a roster entry); once confirmed,
    or at once when no SMS gateway is configured, the member is created (`member_id`, status
    `pending` or, in a district with automatic approval and a confirmed number, `active`) and
    `details` is emptied. `id` is random and unguessable: the page refers to its registration by
    it before any login exists. Rows die with their member (phone numbers are personal data).
    """

    __tablename__ = "registrations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.station_id", ondelete="SET NULL"))
    district_id: Mapped[str] = mapped_column(String(ID_MAX), index=True)
    member_id: Mapped[str | None] = mapped_column(
        ForeignKey("members.member_id", ondelete="CASCADE"), index=True
    )
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16))
    client: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    verified_at: Mapped[dt.datetime | None] = mapped_column()
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_registrations_client_created", "client", "created_at"),
        Index("ix_registrations_state_created", "state", "created_at"),
        CheckConstraint(_in("state", REGISTRATION_STATES), name="state"),
    )


class PhoneCode(Base):
    """A one-time code sent by SMS: only an HMAC of it is stored (key derived from the data key).

    `attempts` counts wrong guesses: at `[sms] max_attempts` the code is void, and the wrong
    guesses of one number within an hour, over all its codes, lock the number (brute force).
    """

    __tablename__ = "phone_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    registration_id: Mapped[str | None] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), index=True
    )
    code_mac: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[dt.datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_phone_codes_phone_created", "phone", "created_at"),
        Index("ix_phone_codes_client_created", "client", "created_at"),
        CheckConstraint(_in("purpose", CODE_PURPOSES), name="purpose"),
    )


class PhoneLogin(Base):
    """A phone's long-lived login: the cookie's token is kept only as its SHA-256 (its CSRF token is
    derived from that hash with a key from the data key, so it is not stored either).

    In the database (not in memory like staff sessions) because it must outlive restarts for
    months; `revoked_at` ends it (the worker logging out, a newer login from "this is my new
    phone", staff suspending the member). Deleted with the member.
    """

    __tablename__ = "phone_logins"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    client: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(200))


class PhoneOpen(Base):
    """One "open this door" from a phone: the centre's decision, the command sent, the door's answer.

    `(member_id, request_id)` is unique: the page makes a fresh `request_id` per tap, so a captured
    request sent again is refused as a replay. The rows also drive the cooldown and the per-member
    and per-address rate limits (counted in the database, so they hold across restarts and across
    several web processes). The opening itself is the station's event (method `remote`, the
    member's id); these rows die with the member.
    """

    __tablename__ = "phone_opens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id", ondelete="CASCADE"))
    station_id: Mapped[str] = mapped_column(String(ID_MAX))
    request_id: Mapped[str] = mapped_column(String(64))
    command_id: Mapped[str | None] = mapped_column(String(48), index=True)
    client: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))
    answered_at: Mapped[dt.datetime | None] = mapped_column()
    distance_m: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("member_id", "request_id"),
        Index("ix_phone_opens_member_at", "member_id", "at"),
        Index("ix_phone_opens_client_at", "client", "at"),
        CheckConstraint(_in("outcome", PHONE_OPEN_OUTCOMES), name="outcome"),
    )
