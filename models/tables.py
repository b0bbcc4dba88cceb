"""The station's tables (SQLAlchemy 2.x declarative mapping).

This module describes the *current* schema; `models.database.migrate` creates it on a fresh database
and upgrades older ones step by step. Any change here needs a migration step there.

Datetimes are stored as naive UTC and come back timezone-aware (`common.db_types.UtcDateTime`);
naive datetimes are refused on the way in, because a station's local clock zone must never leak
into stored validity periods. Unix times that are compared in hot paths (events, nonces, outbox)
are plain numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    DDL,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import JSON

from common.db_types import UtcDateTime as UtcDateTime
from common.db_types import utc_now as utc_now
from recognizer.encoder import MODEL_DLIB

MEMBER_ID_MAX = 64


class Base(DeclarativeBase):
    """Declarative base of all station tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Member(Base):
    """A union member allowed (or once allowed) into the station."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended')", name="ck_members_status"),
        CheckConstraint(f"length(member_id) BETWEEN 1 AND {MEMBER_ID_MAX}", name="ck_members_id_len"),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from", name="ck_members_valid"
        ),
    )

    member_id: Mapped[str] = mapped_column(String(MEMBER_ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    kind: Mapped[str | None] = mapped_column(String(32))
    valid_from: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")
    consent_face: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_cross_station: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utc_now)
    #: The door never lets this member in by face alone: the pass names them and the face confirms
    #: it (set when an installer confirmed a lookalike of another member, or by hand).
    requires_pass: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: Why: [{"member_id", "distance", "confirmed_by", "at"}] for each confirmed lookalike.
    lookalikes: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")

    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="member", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Member(member_id={self.member_id!r}, status={self.status!r})"


# Member ids are unique ignoring case (`W-0001` is `w-0001`); migration step 3 adds the same index
# to older databases, leaving out ids that already collided (models.database).
event.listen(
    Member.__table__,
    "after_create",
    DDL("CREATE UNIQUE INDEX ux_members_member_id_nocase ON members (member_id COLLATE NOCASE)"),  # type: ignore[no-untyped-call]
)


class FaceTemplate(Base):
    """One encrypted face encoding of a member; the plaintext vector never touches the file.

    `model` names the face model that made it (`FaceModel.name`): a roster is built from the
    templates of the station's active model only, so two models' vectors are never compared.
    """

    __tablename__ = "face_templates"
    __table_args__ = (Index("ix_face_templates_member", "member_id"),)

    template_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[str] = mapped_column(
        String(MEMBER_ID_MAX), ForeignKey("members.member_id", ondelete="CASCADE")
    )
    key_fingerprint: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utc_now)
    #: How it was enrolled: "photo" (CLI file), "upload" / "camera" (the installer page), "centre".
    origin: Mapped[str | None] = mapped_column(String(16))
    #: Who enrolled it (installer account, "cli:<user>", or the centre).
    enrolled_by: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(64), default=MODEL_DLIB, server_default=MODEL_DLIB)

    member: Mapped[Member] = relationship(back_populates="templates")

    def __repr__(self) -> str:
        return f"FaceTemplate(template_id={self.template_id!r}, member_id={self.member_id!r})"


class QrKey(Base):
    """An Ed25519 public key that signs member QR codes; revoked keys stay, to keep refusing them."""

    __tablename__ = "qr_keys"
    __table_args__ = (CheckConstraint("length(public_key) = 32", name="ck_qr_keys_len"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    label: Mapped[str] = mapped_column(String(100), default="")
    added_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class QrRevocation(Base):
    """A single revoked QR token (by nonce); kept until the token would have expired anyway."""

    __tablename__ = "qr_revocations"
    __table_args__ = (Index("ix_qr_revocations_expires", "expires_at"),)

    nonce_hex: Mapped[str] = mapped_column(String(128), primary_key=True)
    member_id: Mapped[str | None] = mapped_column(String(MEMBER_ID_MAX))
    expires_at: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utc_now)


class QrNonce(Base):
    """A (kid, nonce) already used once: the single-use replay guard's memory."""

    __tablename__ = "qr_nonces"
    __table_args__ = (Index("ix_qr_nonces_expires", "expires_at"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce_hex: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer)


class Event(Base):
    """An append-only record of something that happened at the door (see the triggers below).

    `member_id` has no foreign key on purpose: the log must outlive a member's removal.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_ts_wall", "ts_wall"),
        Index("ix_events_member", "member_id", "ts_wall"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ts_wall: Mapped[float] = mapped_column(Float)
    ts_mono: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(32))
    member_id: Mapped[str | None] = mapped_column(String(MEMBER_ID_MAX))
    reason: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, kind={self.kind!r}, member_id={self.member_id!r})"


# Append-only is enforced by the database itself, so no code path (ours or a hand-typed sqlite3
# session) can rewrite the access log.
EVENT_TRIGGERS: tuple[str, ...] = (
    # The one permitted update: filling latency_ms once. The row must be committed *before* the relay
    # is driven (no entry without a record), so the frame-to-relay latency is only known afterwards.
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
    "WHEN NOT (OLD.latency_ms IS NULL AND NEW.latency_ms IS NOT NULL "
    "AND NEW.id IS OLD.id AND NEW.ts_wall IS OLD.ts_wall AND NEW.ts_mono IS OLD.ts_mono "
    "AND NEW.kind IS OLD.kind AND NEW.method IS OLD.method AND NEW.member_id IS OLD.member_id "
    "AND NEW.reason IS OLD.reason AND NEW.details IS OLD.details AND NEW.snapshot IS OLD.snapshot) "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END",
)
for _trigger in EVENT_TRIGGERS:
    event.listen(Event.__table__, "after_create", DDL(_trigger))  # type: ignore[no-untyped-call]


class OutboxItem(Base):
    """A message waiting to go to the centre; `seq` is AUTOINCREMENT so it is never reused."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "seq"), {"sqlite_autoincrement": True})

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(36))
    topic_kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StationState(Base):
    """Small key/value facts about the station (e.g. ``roster_version``)."""

    __tablename__ = "station_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
