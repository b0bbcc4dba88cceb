"""Applying a full roster snapshot without ever holding SQLite's write lock for long.

Issue 10 item 10: one transaction for a 6,000-member snapshot held the write lock for 16.6 s, and
members at the door were turned away unrecorded ("not recorded: door stays shut"). So a snapshot
is applied in three steps:

1. **Plan** (a read transaction; WAL readers take no lock the door waits for): compare the
   snapshot with the store, check every member's fields with the store's own rules, check template
   ownership, drop templates of another face model, and encrypt the new templates. Anything
   refused here refuses the whole snapshot before a single write.
2. **Write** the plan in transactions bounded by time (`BATCH_S`, about 50 ms, plus the commit's
   fsync), new members and templates as bulk inserts, with a pause of `GAP_S` between two
   transactions. The pause is what lets the door in: SQLite's lock is not fair, and a waiting
   writer's busy handler sleeps up to 100 ms between tries, so a writer that begins again at once
   can starve it for seconds (measured: the door's 1 s timeout ran out with 100 ms batches and no
   pause). With a pause longer than that sleep, one of the door's tries always falls into it.
   Each batch re-reads which local enrolments are still waiting for upload, so a member enrolled
   on site meanwhile is never undone.
3. **Finish**: removals (members absent from the snapshot and not waiting for upload), QR keys
   and revocations, in batches too; last, in a short transaction, the centre's roster version and
   the door's roster version.

Until step 3's last transaction the applied version is the old one: a station stopped midway
asks for the snapshot again and applies it again (every step is idempotent). The door's in-memory
roster is rebuilt only after that (by the caller), so it never sees a half-written snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher
from contract.messages import FaceModelInfo, MemberRecord, QrKeyRecord, TokenRevocation
from models import members as member_store
from models.database import StoreError
from models.members import CENTRE_SOURCE
from models.tables import FaceTemplate, Member, OutboxItem, utc_now
from recognizer.encoder import MODEL_DLIB
from sync.enrolment import TOPIC_KIND as ENROLMENT_KIND

log = logging.getLogger(__name__)

BATCH_S = 0.05
GAP_S = 0.12  # > the 100 ms a waiting SQLite writer sleeps between tries at most
BATCH_MAX_ITEMS = 250  # also bounds a batch when the machine is slower than the estimate

T = TypeVar("T")


class SnapshotRefused(StoreError, ValueError):
    """The snapshot cannot be applied (found while planning: nothing was written)."""


@dataclass(slots=True)
class _MemberWork:
    member_id: str
    fields: dict[str, Any]
    update: bool  # False: the stored member already had these values when planned
    add: list[tuple[str, str, bytes]]  # (template_id, key fingerprint, ciphertext)
    drop: list[str]


@dataclass
class SnapshotPlan:
    members: set[str]
    work: list[_MemberWork]
    templates_skipped: int = 0
    #: The face model of the templates added (the station's): stored with each row and bound into
    #: its encryption (common.template_cipher).
    model: str = MODEL_DLIB
    qr_keys: list[QrKeyRecord] = field(default_factory=list)
    revoked_kids: list[str] = field(default_factory=list)
    revoked_tokens: list[TokenRevocation] = field(default_factory=list)


@dataclass
class SnapshotReport:
    batches: int = 0
    longest_batch_ms: float = 0.0
    removed: int = 0
    written_members: int = 0


def pending_enrolments(session: Session) -> tuple[frozenset[str], frozenset[str]]:
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


def plan_snapshot(
    session: Session,
    records: Sequence[MemberRecord],
    *,
    model: FaceModelInfo,
    cipher: TemplateCipher,
    unchanged: Callable[[Member, dict[str, Any]], bool],
) -> SnapshotPlan:
    """Step 1: what the snapshot changes, checked and encrypted, from a read transaction."""
    existing = {m.member_id: m for m in member_store.list_members(session)}
    owners: dict[str, str] = {}
    by_member: dict[str, set[str]] = {}
    enrolled_here: set[str] = set()
    for template_id, member_id, source in session.execute(
        select(FaceTemplate.template_id, FaceTemplate.member_id, FaceTemplate.source)
    ):
        owners[str(template_id)] = str(member_id)
        by_member.setdefault(str(member_id), set()).add(str(template_id))
        if source != CENTRE_SOURCE:
            enrolled_here.add(str(template_id))
    _, pending_templates = pending_enrolments(session)
    plan = SnapshotPlan(members={r.member_id for r in records}, work=[], model=model.name)
    claimed: dict[str, str] = {}
    for record in records:
        member_id = record.member_id
        fields = record.fields()
        try:
            member_store.validate_fields(fields)
        except (StoreError, ValueError) as exc:
            raise SnapshotRefused(f"member {member_id!r}: {exc}") from exc
        wanted = [t for t in record.templates if t.model == model.name and len(t.vector) == model.dim]
        plan.templates_skipped += len(record.templates) - len(wanted)
        for template in wanted:
            owner = owners.get(template.template_id) or claimed.get(template.template_id)
            if owner is not None and owner != member_id:
                raise SnapshotRefused(
                    f"template {template.template_id} belongs to member {owner!r}, not {member_id!r}"
                )
            claimed[template.template_id] = member_id
        current = existing.get(member_id)
        have = by_member.get(member_id, set())
        wanted_ids = {t.template_id for t in wanted}
        # A template enrolled at this station stays while the member keeps face consent: without
        # cross-station consent the centre never received it (the law keeps it on this device), so
        # its absence from the snapshot says nothing. Erasure removes the member; withdrawn face
        # consent deletes every template (update_member); the centre removes one explicitly
        # with a `remove_template` change.
        local = enrolled_here if fields.get("consent_face") else frozenset()
        drop = sorted(
            t for t in have if t not in wanted_ids and t not in pending_templates and t not in local
        )
        add: list[tuple[str, str, bytes]] = []
        for template in wanted:
            if template.template_id in have:
                continue
            try:
                blob = cipher.encrypt(member_id, template.template_id, template.vector, model.name)
            except (StoreError, ValueError) as exc:
                raise SnapshotRefused(
                    f"member {member_id!r}, template {template.template_id}: {exc}"
                ) from exc
            add.append((template.template_id, cipher.fingerprint, blob))
        changed = current is None or not unchanged(current, fields)
        if changed or add or drop:
            plan.work.append(_MemberWork(member_id, fields, changed, add, drop))
    return plan


Pending = tuple[frozenset[str], frozenset[str]]


def _timed_batches(
    sessions: sessionmaker[Session],
    items: Sequence[T],
    apply: Callable[[Session, Sequence[T], Pending], None],
    report: SnapshotReport,
) -> None:
    """Apply `items` in transactions of about BATCH_S seconds each, with GAP_S between them.

    The chunk size adapts to the measured time per item (1 to BATCH_MAX_ITEMS). Each transaction
    first reads the local enrolments still waiting for upload (`Pending`), so one committed
    between two batches is respected."""
    index, size = 0, 16
    while index < len(items):
        if report.batches:
            time.sleep(GAP_S)
        chunk = items[index : index + size]
        started = time.perf_counter()
        with sessions() as session, session.begin():
            apply(session, chunk, pending_enrolments(session))
            session.flush()
            work = time.perf_counter() - started  # sized on the work, not the commit's fsync
        took = time.perf_counter() - started
        index += len(chunk)
        report.batches += 1
        report.longest_batch_ms = max(report.longest_batch_ms, took * 1000.0)
        per_item = work / max(1, len(chunk))
        size = max(1, min(BATCH_MAX_ITEMS, int(BATCH_S / per_item) if per_item > 0 else BATCH_MAX_ITEMS))


def write_plan(
    sessions: sessionmaker[Session],
    plan: SnapshotPlan,
    *,
    add_key: Callable[[Session, QrKeyRecord], None],
    revoke_key: Callable[[Session, str], None],
    revoke_token: Callable[[Session, TokenRevocation], None],
    finish: Callable[[Session], None],
) -> SnapshotReport:
    """Steps 2 and 3 with `sessions` opening BEGIN IMMEDIATE transactions; `finish` runs in the last."""
    report = SnapshotReport()

    def apply_members(session: Session, chunk: Sequence[_MemberWork], pending: Pending) -> None:
        keep = pending[1]
        ids = [w.member_id for w in chunk]
        present = set(session.scalars(select(Member.member_id).where(Member.member_id.in_(ids))))
        now = utc_now()
        new_rows = []
        for work in chunk:
            if work.member_id not in present:
                values = member_store.validate_fields(work.fields)
                consent = bool(values.get("consent_face") or values.get("consent_cross_station"))
                new_rows.append(
                    {
                        "member_id": work.member_id,
                        **values,
                        "consent_at": now if consent else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            elif work.update:
                member = member_store.update_member(session, work.member_id, **work.fields)
                session.flush()
                session.expire(member, ["templates"])
        if new_rows:
            session.execute(insert(Member), new_rows)
        report.written_members += len(chunk)
        drop = [t for w in chunk for t in w.drop if t not in keep]
        if drop:
            owners = {w.member_id for w in chunk}
            session.execute(
                delete(FaceTemplate).where(
                    FaceTemplate.template_id.in_(drop), FaceTemplate.member_id.in_(owners)
                )
            )
        wanted = [(w.member_id, *t) for w in chunk for t in w.add]
        if wanted:
            there = set(
                session.scalars(
                    select(FaceTemplate.template_id).where(
                        FaceTemplate.template_id.in_([t[1] for t in wanted])
                    )
                )
            )
            rows = [
                {
                    "template_id": template_id,
                    "member_id": member_id,
                    "key_fingerprint": fingerprint,
                    "ciphertext": blob,
                    "quality": {"source": CENTRE_SOURCE},
                    "source": CENTRE_SOURCE,
                    "origin": CENTRE_SOURCE,
                    "created_at": now,
                    "model": plan.model,
                }
                for member_id, template_id, fingerprint, blob in wanted
                if template_id not in there
            ]
            if rows:
                session.execute(insert(FaceTemplate), rows)
        if drop or wanted:
            session.expire_all()

    _timed_batches(sessions, plan.work, apply_members, report)

    with sessions() as session:
        gone = [m for m in session.scalars(select(Member.member_id)) if m not in plan.members]

    def remove(session: Session, chunk: Sequence[str], pending: Pending) -> None:
        for member_id in chunk:
            if member_id not in pending[0] and member_store.remove_member(session, member_id):
                report.removed += 1

    def each(fn: Callable[[Session, Any], None]) -> Callable[[Session, Sequence[Any], Pending], None]:
        def apply(session: Session, chunk: Sequence[Any], pending: Pending) -> None:
            for item in chunk:
                fn(session, item)

        return apply

    _timed_batches(sessions, gone, remove, report)
    _timed_batches(sessions, plan.qr_keys, each(add_key), report)
    _timed_batches(sessions, plan.revoked_kids, each(revoke_key), report)
    _timed_batches(sessions, plan.revoked_tokens, each(revoke_token), report)
    if report.batches:
        time.sleep(GAP_S)
    started = time.perf_counter()
    with sessions() as session, session.begin():
        finish(session)
    report.batches += 1
    report.longest_batch_ms = max(report.longest_batch_ms, (time.perf_counter() - started) * 1000.0)
    return report
