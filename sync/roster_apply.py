"""Applying the centre's roster: versioned changes, full snapshots, never half of either.

The centre numbers this station's roster changes 1, 2, 3, ... (`sync.roster_version` in
`station_state` holds the last one applied; it is separate from the station's own
`roster_version`, which also counts local enrolments and only tells the door to rebuild).

* Change N when N-1 is applied: every op is validated and applied in **one transaction**,
  together with the new version and a bump of the door's roster version. Any refused op rolls the
  whole change back: the roster is exactly as before, and the error goes back to the centre.
* Change N when N was already applied: a redelivery; nothing happens (applying twice is harmless).
* Change N further ahead: a gap. It is held (up to `MAX_HELD`) and a resync is requested; once
  the missing versions or a snapshot arrive, the held changes are applied in order.
* A snapshot (possibly in parts) is the whole roster at version V: applied in one transaction
  once every part is in. Members missing from it are removed, except those enrolled here whose
  enrolment has not reached the centre yet (still in the outbox), so an on-site enrolment is
  never lost to a snapshot taken before the centre heard of it.

Only after the commit is the door's in-memory roster rebuilt and swapped (`after_commit`), so the
door never sees a roster that a rollback then takes back.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from contract.messages import (
    ActivateMember,
    AddMember,
    AddQrKey,
    AddTemplate,
    MemberRecord,
    QrKeyRecord,
    RemoveMember,
    RemoveTemplate,
    RevokeQrKey,
    RevokeToken,
    RosterChange,
    RosterOp,
    RosterRequestReason,
    RosterSnapshotPart,
    SuspendMember,
    TemplateRecord,
    TokenRevocation,
    UpdateMember,
)
from models import members as member_store
from models import qr_store
from models.database import StoreError
from models.tables import FaceTemplate, Member, OutboxItem, utc_now
from models.template_cipher import TemplateCipher, as_template_vector
from recognizer.encoder import DLIB_IDENTITY, MODEL_DLIB, ModelIdentity
from recognizer.qr_token import kid_for
from sync.enrolment import TOPIC_KIND as ENROLMENT_KIND
from sync.outcome import Outcome

log = logging.getLogger(__name__)

CENTRE_VERSION_KEY = "sync.roster_version"
MAX_HELD = 1000
MAX_SNAPSHOT_MEMBERS = 50_000
SNAPSHOT_PARTS_TTL_S = 300.0


class RosterRefused(StoreError, ValueError):
    """A roster op that cannot be applied (the message names the op and why)."""


@dataclass
class _Collecting:
    snapshot_id: str
    version: int
    parts: int
    started: float
    received: dict[int, RosterSnapshotPart] = field(default_factory=dict)


class RosterSync:
    """Applies roster messages for one station. Not thread-safe: one worker thread calls it."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        write_sessions: sessionmaker[Session] | None = None,
        cipher: Callable[[], TemplateCipher],
        bump_roster: Callable[[Session], None],
        after_commit: Callable[[], None],
        request_resync: Callable[[RosterRequestReason, int], object],
        clock: Callable[[], float] = time.monotonic,
        face_model: Callable[[], ModelIdentity] = lambda: DLIB_IDENTITY,
    ) -> None:
        self._sessions = sessions
        # Changes read (versions, members) before they write: BEGIN IMMEDIATE, or a door event
        # committed in between makes SQLite refuse the write at once ("database is locked").
        self._write_sessions = write_sessions or sessions
        self._cipher = cipher
        self._bump = bump_roster
        self._after_commit = after_commit
        self._request_resync = request_resync
        self._clock = clock
        self._face_model = face_model
        self._held: dict[int, RosterChange] = {}
        self._collecting: _Collecting | None = None

    # -- reading --------------------------------------------------------------------------------

    def applied_version(self) -> int:
        with self._sessions() as session:
            return _read_version(session)

    @property
    def held_versions(self) -> list[int]:
        return sorted(self._held)

    # -- entry point ----------------------------------------------------------------------------

    def handle(self, message: RosterChange | RosterSnapshotPart) -> list[Outcome]:
        if isinstance(message, RosterSnapshotPart):
            return self._handle_part(message)
        return self._handle_change(message)

    def _handle_change(self, change: RosterChange) -> list[Outcome]:
        applied = self.applied_version()
        if change.version <= applied:
            return [
                Outcome(
                    change.id,
                    "roster_change",
                    True,
                    data={"version": change.version, "applied_version": applied, "duplicate": True},
                )
            ]
        if change.version > applied + 1:
            if len(self._held) < MAX_HELD or change.version in self._held:
                self._held[change.version] = change
            self._request_resync("gap", applied)
            return [
                Outcome(
                    change.id,
                    "roster_change",
                    False,
                    "version_gap",
                    f"have version {applied}, got {change.version}: held, resync requested",
                    {"version": change.version, "applied_version": applied},
                )
            ]
        results = [self._apply_change(change)]
        results.extend(self._apply_held())
        return results

    def _apply_held(self) -> list[Outcome]:
        results: list[Outcome] = []
        applied = self.applied_version()
        for version in sorted(self._held):
            if version <= applied:
                del self._held[version]
        while applied + 1 in self._held:
            change = self._held.pop(applied + 1)
            result = self._apply_change(change)
            results.append(result)
            if not result.ok:
                break
            applied = change.version
        return results

    # -- one change -----------------------------------------------------------------------------

    def _apply_change(self, change: RosterChange) -> Outcome:
        started = time.perf_counter()
        try:
            with self._write_sessions() as session, session.begin():
                if _read_version(session) != change.version - 1:
                    raise RosterRefused("the applied version changed meanwhile")  # another process
                for index, op in enumerate(change.ops):
                    try:
                        self._apply_op(session, op)
                    except (StoreError, ValueError, LookupError, SQLAlchemyError) as exc:
                        raise RosterRefused(f"op {index} ({op.op}): {exc}") from exc
                member_store.set_state(session, CENTRE_VERSION_KEY, str(change.version))
                self._bump(session)
        except (RosterRefused, StoreError, SQLAlchemyError) as exc:
            log.warning(
                "roster change refused; nothing applied",
                extra={"fields": {"version": change.version, "id": change.id, "error": str(exc)[:300]}},
            )
            return Outcome(
                change.id,
                "roster_change",
                False,
                "apply_failed",
                str(exc)[:500],
                {"version": change.version, "applied_version": change.version - 1},
            )
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "roster change applied",
            extra={"fields": {"version": change.version, "ops": len(change.ops), "ms": elapsed_ms}},
        )
        self._notify_commit()
        return Outcome(
            change.id,
            "roster_change",
            True,
            data={"version": change.version, "applied_version": change.version, "ops": len(change.ops)},
        )

    def _notify_commit(self) -> None:
        try:
            self._after_commit()
        except Exception:
            log.exception("roster rebuild after commit failed (the door picks the change up itself)")

    def _apply_op(self, session: Session, op: RosterOp) -> None:
        if isinstance(op, AddMember):
            self._upsert_member(
                session,
                op.member,
                index=_Templates.load(session, op.member.member_id),
                replace_templates=False,
                keep=frozenset(),
            )
        elif isinstance(op, UpdateMember):
            member_store.update_member(session, op.member_id, **op.fields.changes())
        elif isinstance(op, SuspendMember):
            if member_store.get_member(session, op.member_id) is None:
                log.info(
                    "suspend of an unknown member: nothing to do",
                    extra={"fields": {"member_id": op.member_id}},
                )
            else:
                member_store.update_member(session, op.member_id, status="suspended")
        elif isinstance(op, ActivateMember):
            member_store.update_member(session, op.member_id, status="active")
        elif isinstance(op, RemoveMember):
            member_store.remove_member(session, op.member_id)
        elif isinstance(op, AddTemplate):
            member = member_store.get_member(session, op.member_id)
            if member is None:
                raise RosterRefused(f"no member {op.member_id!r} to add a template to")
            if self._add_template(session, member, op.template, _Templates.load(session, op.member_id)):
                session.flush()
                session.expire(member, ["templates"])
        elif isinstance(op, RemoveTemplate):
            _remove_template(session, op.member_id, op.template_id)
        elif isinstance(op, AddQrKey):
            _add_key(session, op.key)
        elif isinstance(op, RevokeQrKey):
            _revoke_key(session, op.kid)
        elif isinstance(op, RevokeToken):
            _revoke_token(session, op.revocation)
        else:  # pragma: no cover - the union is closed
            raise RosterRefused(f"unknown op {op!r}")

    def _upsert_member(
        self,
        session: Session,
        record: MemberRecord,
        *,
        index: _Templates,
        replace_templates: bool,
        keep: frozenset[str],
    ) -> None:
        fields = record.fields()
        known = index.members
        member = known.get(record.member_id) if known is not None else None
        if member is None and known is None:
            member = member_store.get_member(session, record.member_id)
        if member is None:
            member = member_store.add_member(session, member_id=record.member_id, **fields)
        elif not _unchanged(member, fields):
            member = member_store.update_member(session, record.member_id, **fields)
            if fields.get("consent_face") is False:
                index.forget_member(record.member_id)  # update_member deleted them
        if replace_templates:
            wanted = {t.template_id for t in record.templates}
            index.drop(
                record.member_id, [t for t in index.of(record.member_id) if t not in wanted and t not in keep]
            )
        added = [self._add_template(session, member, t, index) for t in record.templates]
        if any(added):
            session.expire(member, ["templates"])

    def _add_template(
        self, session: Session, member: Member | None, record: TemplateRecord, index: _Templates
    ) -> bool:
        """Store one template (encrypted) for `member`; False if it was already there."""
        if member is None:
            raise RosterRefused("no such member to add a template to")
        member_id = member.member_id
        if not member.consent_face:
            raise RosterRefused(f"member {member_id!r} has no face consent (consent_face is false)")
        owner = index.owner.get(record.template_id)
        if owner is not None:
            if owner != member_id:
                raise RosterRefused(f"template {record.template_id} belongs to another member")
            return False  # already there: applying twice is harmless
        if len(index.of(member_id)) >= member_store.MAX_TEMPLATES_PER_MEMBER:
            raise RosterRefused(
                f"member {member_id!r} already has {member_store.MAX_TEMPLATES_PER_MEMBER} templates"
            )
        vector = as_template_vector(record.vector, "template.vector", self._template_dim(record))
        cipher = self._cipher()
        session.add(
            FaceTemplate(
                template_id=record.template_id,
                member_id=member_id,
                key_fingerprint=cipher.fingerprint,
                ciphertext=cipher.encrypt(member_id, record.template_id, vector, record.model),
                quality={"source": "centre"},
                source="centre",
                created_at=utc_now(),
                model=record.model,
            )
        )
        index.add(member_id, record.template_id)
        return True

    def _template_dim(self, record: TemplateRecord) -> int:
        """The length a template of `record.model` must have here; other models are refused.

        dlib's templates are always stored (their length is known; a station switched back to dlib
        uses them) and the active model's are checked against its length. A third model's vectors
        could be neither checked nor used: storing them would only risk a roster that fails to load
        after a later switch, so the change is refused and the centre is told why.
        """
        if record.model == MODEL_DLIB:
            return DLIB_IDENTITY.dim
        active = self._face_model()
        if record.model != active.name:
            raise RosterRefused(
                f"template {record.template_id} is of face model {record.model!r}; this station runs "
                f"{active.name!r} and keeps {MODEL_DLIB!r} templates: not stored"
            )
        return active.dim

    # -- snapshots ------------------------------------------------------------------------------

    def _handle_part(self, part: RosterSnapshotPart) -> list[Outcome]:
        now = self._clock()
        applied = self.applied_version()
        if part.version < applied:
            return [
                Outcome(
                    part.id,
                    "roster_snapshot",
                    False,
                    "stale_snapshot",
                    f"snapshot of version {part.version} is older than the applied version {applied}",
                    {"version": part.version, "applied_version": applied},
                )
            ]
        current = self._collecting
        if current is not None and (
            current.snapshot_id != part.snapshot_id or now - current.started > SNAPSHOT_PARTS_TTL_S
        ):
            log.info(
                "incomplete roster snapshot dropped",
                extra={"fields": {"snapshot_id": current.snapshot_id, "had": len(current.received)}},
            )
            current = None
        if current is None:
            current = _Collecting(part.snapshot_id, part.version, part.parts, now)
        if part.version != current.version or part.parts != current.parts:
            self._collecting = None
            return [
                Outcome(
                    part.id,
                    "roster_snapshot",
                    False,
                    "invalid_payload",
                    "parts of one snapshot disagree on version or number of parts",
                )
            ]
        current.received[part.part] = part
        self._collecting = current
        total = sum(len(p.members) for p in current.received.values())
        if total > MAX_SNAPSHOT_MEMBERS:
            self._collecting = None
            return [
                Outcome(
                    part.id,
                    "roster_snapshot",
                    False,
                    "too_large",
                    f"snapshot holds more than {MAX_SNAPSHOT_MEMBERS} members",
                )
            ]
        if len(current.received) < current.parts:
            return []
        self._collecting = None
        parts = [current.received[i] for i in range(1, current.parts + 1)]
        result = self._apply_snapshot(parts, part.id)
        results = [result]
        if result.ok:
            results.extend(self._apply_held())
        return results

    def _apply_snapshot(self, parts: list[RosterSnapshotPart], ref: str) -> Outcome:
        version = parts[0].version
        members: dict[str, MemberRecord] = {}
        for part in parts:
            for record in part.members:
                if record.member_id in members:
                    return Outcome(
                        ref, "roster_snapshot", False, "invalid_payload", f"member {record.member_id!r} twice"
                    )
                members[record.member_id] = record
        started = time.perf_counter()
        try:
            with self._write_sessions() as session, session.begin():
                pending_members, pending_templates = _pending_enrolments(session)
                removed = 0
                # Reads first (all members into the identity map, all template owners), so the
                # per-member work below issues writes only: the write lock is held for less.
                for existing in member_store.list_members(session):
                    if existing.member_id not in members and existing.member_id not in pending_members:
                        member_store.remove_member(session, existing.member_id)
                        removed += 1
                session.flush()
                index = _Templates.load(session)
                index.members = {m.member_id: m for m in member_store.list_members(session)}
                for record in members.values():
                    try:
                        self._upsert_member(
                            session, record, index=index, replace_templates=True, keep=pending_templates
                        )
                    except (StoreError, ValueError, LookupError, SQLAlchemyError) as exc:
                        raise RosterRefused(f"member {record.member_id!r}: {exc}") from exc
                index.delete_dropped(session)
                for part in parts:
                    for key in part.qr_keys:
                        _add_key(session, key)
                    for kid in part.revoked_kids:
                        _revoke_key(session, kid)
                    for revocation in part.revoked_tokens:
                        _revoke_token(session, revocation)
                member_store.set_state(session, CENTRE_VERSION_KEY, str(version))
                self._bump(session)
        except (RosterRefused, StoreError, ValueError, SQLAlchemyError) as exc:
            log.warning(
                "roster snapshot refused; nothing applied",
                extra={"fields": {"version": version, "error": str(exc)[:300]}},
            )
            return Outcome(
                ref, "roster_snapshot", False, "apply_failed", str(exc)[:500], {"version": version}
            )
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "roster snapshot applied",
            extra={
                "fields": {"version": version, "members": len(members), "removed": removed, "ms": elapsed_ms}
            },
        )
        self._notify_commit()
        return Outcome(
            ref,
            "roster_snapshot",
            True,
            data={
                "version": version,
                "applied_version": version,
                "members": len(members),
                "removed": removed,
            },
        )


# -- helpers -----------------------------------------------------------------------------------------


def _read_version(session: Session) -> int:
    stored = member_store.get_state(session, CENTRE_VERSION_KEY)
    try:
        return int(stored) if stored is not None else 0
    except ValueError:
        log.error("station_state sync.roster_version is not a number; treating it as 0")
        return 0


class _Templates:
    """Which template ids exist and whose they are, read once per transaction, so that adding a
    snapshot's thousands of templates costs no query per template."""

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        self.owner: dict[str, str] = {}
        #: every member, when the caller loaded them all (a snapshot): saves a query per member
        self.members: dict[str, Member] | None = None
        self._by_member: dict[str, set[str]] = {}
        self._dropped: list[str] = []
        for template_id, member_id in rows:
            self.add(member_id, template_id)

    @classmethod
    def load(cls, session: Session, member_id: str | None = None) -> _Templates:
        query = select(FaceTemplate.template_id, FaceTemplate.member_id)
        if member_id is not None:
            query = query.where(FaceTemplate.member_id == member_id)
        session.flush()
        return cls((str(t), str(m)) for t, m in session.execute(query))

    def of(self, member_id: str) -> set[str]:
        return self._by_member.get(member_id, set())

    def add(self, member_id: str, template_id: str) -> None:
        self.owner[template_id] = member_id
        self._by_member.setdefault(member_id, set()).add(template_id)

    def forget_member(self, member_id: str) -> None:
        for template_id in self._by_member.pop(member_id, set()):
            self.owner.pop(template_id, None)

    def drop(self, member_id: str, template_ids: Iterable[str]) -> None:
        for template_id in list(template_ids):
            self.owner.pop(template_id, None)
            self._by_member.get(member_id, set()).discard(template_id)
            self._dropped.append(template_id)

    def delete_dropped(self, session: Session) -> None:
        """Delete the dropped templates in one statement (after the ORM has flushed its inserts)."""
        session.flush()
        for start in range(0, len(self._dropped), 500):
            chunk = self._dropped[start : start + 500]
            session.execute(delete(FaceTemplate).where(FaceTemplate.template_id.in_(chunk)))
        if self._dropped:
            session.expire_all()
        self._dropped.clear()


def _unchanged(member: Member, fields: dict[str, Any]) -> bool:
    """True if `fields` would not change the stored member (a snapshot then writes nothing for it,
    which keeps the write lock, and so the door's own commits, short)."""
    for name, value in fields.items():
        current = getattr(member, name)
        if name == "groups":
            current, value = list(current or []), list(dict.fromkeys(value))
        elif isinstance(current, dt.datetime) and current.tzinfo is None:
            current = current.replace(tzinfo=dt.UTC)
        if current != value:
            return False
    return True


def _expire_templates(session: Session, member_id: str) -> None:
    """Keep the member's `templates` collection honest after direct inserts/deletes, so that a later
    consent withdrawal in the same transaction deletes every template, the new ones included."""
    member = member_store.get_member(session, member_id)
    if member is not None:
        session.expire(member, ["templates"])


def _remove_template(session: Session, member_id: str, template_id: str) -> None:
    template = session.get(FaceTemplate, template_id)
    if template is None:
        return
    if template.member_id != member_id:
        raise RosterRefused(f"template {template_id} does not belong to member {member_id!r}")
    session.delete(template)
    session.flush()
    _expire_templates(session, member_id)


def _add_key(session: Session, key: QrKeyRecord) -> None:
    raw = base64.b64decode(key.public_key, validate=True)
    if kid_for(raw) != key.kid:
        raise RosterRefused(f"kid {key.kid!r} does not match its public key (expected {kid_for(raw)})")
    qr_store.add_public_key(session, kid=key.kid, public_key=raw, label=key.label)


def _revoke_key(session: Session, kid: str) -> None:
    try:
        qr_store.revoke_key(session, kid)
    except qr_store.UnknownKeyError:
        log.info("revocation of an unknown QR key: nothing to do", extra={"fields": {"kid": kid}})


def _revoke_token(session: Session, revocation: TokenRevocation) -> None:
    qr_store.revoke_token(
        session,
        nonce_hex=revocation.nonce_hex,
        member_id=revocation.member_id,
        expires_at=revocation.expires_at,
        reason=revocation.reason,
    )


def _pending_enrolments(session: Session) -> tuple[frozenset[str], frozenset[str]]:
    """Members and templates enrolled here whose upload is still in the outbox."""
    members: set[str] = set()
    templates: set[str] = set()
    rows: Iterable[dict[str, Any]] = session.scalars(
        select(OutboxItem.payload).where(
            OutboxItem.topic_kind == ENROLMENT_KIND, OutboxItem.sent_at.is_(None)
        )
    )
    for payload in rows:
        if isinstance(payload, dict):
            if isinstance(payload.get("member_id"), str):
                members.add(payload["member_id"])
            templates.update(str(t) for t in payload.get("template_ids", []) if isinstance(t, str))
    return frozenset(members), frozenset(templates)
