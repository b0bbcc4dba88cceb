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
* A snapshot (possibly in parts) is the whole roster at version V: once every part is in it is
  checked as a whole and then written in short batches, the version last (`sync.snapshot_apply`:
  the door's commits never wait long). Members missing from it are removed, except those
  enrolled here whose enrolment has not reached the centre yet (still in the outbox), so an
  on-site enrolment is never lost to a snapshot taken before the centre heard of it.
* A roster status names the centre's latest version: current, or behind (resync requested).
* Templates of a face model other than the station's are not stored (counted in the result).
* Centre signing keys (`add_centre_key`, `revoke_centre_key`) change only through signed messages,
  i.e. on a station that already trusts a centre key: an unsigned channel cannot plant one.

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

from common.template_cipher import TemplateCipher
from contract.messages import (
    ActivateMember,
    AddCentreKey,
    AddMember,
    AddQrKey,
    AddTemplate,
    FaceModelInfo,
    MemberRecord,
    QrKeyRecord,
    RemoveMember,
    RemoveTemplate,
    RevokeCentreKey,
    RevokeQrKey,
    RevokeToken,
    RosterChange,
    RosterOp,
    RosterRequestReason,
    RosterSnapshotPart,
    RosterStatus,
    SuspendMember,
    TemplateRecord,
    TokenRevocation,
    UpdateMember,
)
from contract.signing import PublicKey
from models import members as member_store
from models import qr_store
from models.database import StoreError
from models.members import CENTRE_SOURCE
from models.tables import FaceTemplate, Member, utc_now
from recognizer.qr_token import kid_for
from sync import keys as centre_keys
from sync.outcome import Outcome
from sync.snapshot_apply import SnapshotRefused, plan_snapshot, write_plan

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
        face_model: Callable[[], FaceModelInfo],
        keys: centre_keys.CentreKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._face_model = face_model
        self._keys = keys
        #: the centre's latest version for this station, from its last roster status
        self.centre_version: int | None = None
        self.last_status: RosterStatus | None = None
        self._skipped = 0
        self._sessions = sessions
        # Changes read (versions, members) before they write: BEGIN IMMEDIATE, or a door event
        # committed in between makes SQLite refuse the write at once ("database is locked").
        self._write_sessions = write_sessions or sessions
        self._cipher = cipher
        self._bump = bump_roster
        self._after_commit = after_commit
        self._request_resync = request_resync
        self._clock = clock
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

    def handle(self, message: RosterChange | RosterSnapshotPart | RosterStatus) -> list[Outcome]:
        if isinstance(message, RosterSnapshotPart):
            return self._handle_part(message)
        if isinstance(message, RosterStatus):
            return [self._handle_status(message)]
        return self._handle_change(message)

    def _handle_status(self, status: RosterStatus) -> Outcome:
        applied = self.applied_version()
        current = applied >= status.version
        self.centre_version = status.version
        self.last_status = status
        if not current:
            self._request_resync("gap", applied)
        log.info(
            "roster status from the centre",
            extra={
                "fields": {"centre_version": status.version, "applied_version": applied, "current": current}
            },
        )
        return Outcome(
            status.id,
            "roster_status",
            True,
            data={
                "current": current,
                "version": status.version,
                "applied_version": applied,
                "request_id": status.request_id,
            },
        )

    def is_current(self) -> bool:
        """True when the centre's last roster status is at or below the applied version."""
        return self.centre_version is not None and self.applied_version() >= self.centre_version

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
        self._skipped = 0
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
            data={
                "version": change.version,
                "applied_version": change.version,
                "ops": len(change.ops),
                **self._skipped_data(),
            },
        )

    def _skipped_data(self) -> dict[str, Any]:
        if not self._skipped:
            return {}
        return {"templates_skipped": self._skipped, "station_model": self._face_model().name}

    def _notify_commit(self) -> None:
        if self._keys is not None:
            try:
                self._keys.reload()
            except Exception:
                log.exception("trusted centre keys not reloaded")
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
        elif isinstance(op, AddCentreKey | RevokeCentreKey):
            self._centre_key_op(session, op)
        else:  # pragma: no cover - the union is closed
            raise RosterRefused(f"unknown op {op!r}")

    def _centre_key_op(self, session: Session, op: AddCentreKey | RevokeCentreKey) -> None:
        keys = self._keys
        if keys is None or not keys.required:
            # Only a signed message can change whom the station trusts; without a pinned key there
            # is no signature, and an unsigned "trust my key" would hand the door to whoever sent it.
            raise RosterRefused(
                "centre keys change only through signed messages; this station trusts no centre key "
                "(pin one at install: [mqtt] centre_key_file or `yizhan sync trust`)"
            )
        if isinstance(op, AddCentreKey):
            key = PublicKey.from_b64(op.key.public_key, op.key.label)
            if key.kid != op.key.kid:
                raise RosterRefused(f"kid {op.key.kid!r} does not match its public key (expected {key.kid})")
            centre_keys.trust(session, key, "centre")
        else:
            centre_keys.revoke(session, op.kid, keys.file_keys)

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
        model = self._face_model()
        if record.model != model.name or len(record.vector) != model.dim:
            self._skipped += 1  # another face model's vector: useless here, so not kept
            return False
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
        vector = record.vector
        cipher = self._cipher()
        session.add(
            FaceTemplate(
                template_id=record.template_id,
                member_id=member_id,
                key_fingerprint=cipher.fingerprint,
                ciphertext=cipher.encrypt(member_id, record.template_id, vector, record.model),
                quality={"source": CENTRE_SOURCE},
                source=CENTRE_SOURCE,
                origin=CENTRE_SOURCE,
                created_at=utc_now(),
                model=record.model,
            )
        )
        index.add(member_id, record.template_id)
        return True

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
        records = list(members.values())
        try:
            with self._sessions() as session:
                plan = plan_snapshot(
                    session, records, model=self._face_model(), cipher=self._cipher(), unchanged=_unchanged
                )
            for part in parts:
                plan.qr_keys.extend(part.qr_keys)
                plan.revoked_kids.extend(part.revoked_kids)
                plan.revoked_tokens.extend(part.revoked_tokens)
            for key in plan.qr_keys:  # checked before anything is written, like the members
                _check_kid(key)
        except (SnapshotRefused, RosterRefused, StoreError, ValueError, SQLAlchemyError) as exc:
            log.warning(
                "roster snapshot refused; nothing applied",
                extra={"fields": {"version": version, "error": str(exc)[:300]}},
            )
            return Outcome(
                ref, "roster_snapshot", False, "apply_failed", str(exc)[:500], {"version": version}
            )

        def finish(session: Session) -> None:
            member_store.set_state(session, CENTRE_VERSION_KEY, str(version))
            self._bump(session)

        try:
            report = write_plan(
                self._write_sessions,
                plan,
                add_key=_add_key,
                revoke_key=_revoke_key,
                revoke_token=_revoke_token,
                finish=finish,
            )
        except (StoreError, ValueError, SQLAlchemyError) as exc:
            # Checked beforehand, so this is the disk or the database itself. What was written
            # stays (each batch is consistent); the version does not move, so the snapshot comes
            # again on the next request and finishes the job.
            log.error(
                "roster snapshot interrupted; the applied version is unchanged, a resync will finish it",
                extra={"fields": {"version": version, "error": str(exc)[:300]}},
            )
            self._request_resync("invalid", self.applied_version())
            return Outcome(
                ref,
                "roster_snapshot",
                False,
                "apply_failed",
                f"interrupted, will be requested again: {exc}"[:500],
                {"version": version},
            )
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "roster snapshot applied",
            extra={
                "fields": {
                    "version": version,
                    "members": len(members),
                    "written": report.written_members,
                    "removed": report.removed,
                    "batches": report.batches,
                    "longest_batch_ms": round(report.longest_batch_ms, 1),
                    "ms": elapsed_ms,
                }
            },
        )
        self._notify_commit()
        data: dict[str, Any] = {
            "version": version,
            "applied_version": version,
            "members": len(members),
            "removed": report.removed,
        }
        if plan.templates_skipped:
            data.update(templates_skipped=plan.templates_skipped, station_model=self._face_model().name)
        return Outcome(ref, "roster_snapshot", True, data=data)


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


def _check_kid(key: QrKeyRecord) -> bytes:
    raw = base64.b64decode(key.public_key, validate=True)
    if kid_for(raw) != key.kid:
        raise RosterRefused(f"kid {key.kid!r} does not match its public key (expected {kid_for(raw)})")
    return raw


def _add_key(session: Session, key: QrKeyRecord) -> None:
    qr_store.add_public_key(session, kid=key.kid, public_key=_check_kid(key), label=key.label)


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
