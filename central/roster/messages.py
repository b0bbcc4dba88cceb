"""Building the `down/roster` messages: changes with their templates filled in, snapshots, statuses.

Stored changes name templates by id; here the vectors are decrypted from `face_templates` (under the
data key) at the moment the message is built, so face data never sits in clear in the database.
A template deleted since the change was written (consent withdrawn, member erased) is left out; an
`add_template` whose template is gone becomes the equivalent `remove_template` (a later change
removes it anyway, and a change must keep at least one op).

Messages are plain dicts in the contract's shape (docs/mqtt.md); the caller signs and publishes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.roster import state
from central.roster.view import StationView, add_member_op, view
from central.store import signing_keys
from central.store.tables import FaceTemplate, QrRevocation, RosterChange, SigningKey, Station
from common.template_cipher import TemplateCipher
from contract.messages import MAX_SNAPSHOT_MEMBERS_PER_PART

MAX_PART_BYTES = 900_000
DECIMALS = 7  # float32 carries ~7 significant digits; dlib's components are below 1


class Templates:
    """Decrypted templates by id, loaded in bulk and kept for one build (one fan-out round)."""

    def __init__(self, session: Session, cipher: TemplateCipher) -> None:
        self._session = session
        self._cipher = cipher
        self._cache: dict[str, dict[str, Any] | None] = {}

    def load(self, template_ids: Iterable[str]) -> None:
        wanted = [t for t in set(template_ids) if t not in self._cache]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._session.execute(
                select(
                    FaceTemplate.template_id,
                    FaceTemplate.member_id,
                    FaceTemplate.model,
                    FaceTemplate.dim,
                    FaceTemplate.key_fingerprint,
                    FaceTemplate.ciphertext,
                ).where(FaceTemplate.template_id.in_(chunk))
            ).all()
            for template_id, member_id, model, dim, fingerprint, blob in rows:
                if not blob:  # withdrawn: the centre holds no copy
                    self._cache[template_id] = None
                    continue
                vector = self._cipher.decrypt(member_id, template_id, fingerprint, blob, model=model, dim=dim)
                self._cache[template_id] = {
                    "template_id": template_id,
                    "model": model,
                    "vector": [round(float(x), DECIMALS) for x in vector.tolist()],
                }
            for template_id in chunk:
                self._cache.setdefault(template_id, None)

    def get(self, template_id: str) -> dict[str, Any] | None:
        if template_id not in self._cache:
            self.load([template_id])
        return self._cache.get(template_id)


def _referenced(ops: Iterable[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for op in ops:
        if op.get("op") == "add_member":
            ids.extend(op["member"].get("templates", []))
        elif op.get("op") == "add_template":
            ids.append(op["template_id"])
    return ids


def expand_ops(ops: Sequence[dict[str, Any]], templates: Templates) -> list[dict[str, Any]]:
    """Stored ops with their template ids replaced by the templates themselves."""
    templates.load(_referenced(ops))
    out: list[dict[str, Any]] = []
    for op in ops:
        kind = op.get("op")
        if kind == "add_member":
            member = dict(op["member"])
            member["templates"] = [t for t in (templates.get(i) for i in member.get("templates", [])) if t]
            if not member["templates"]:
                del member["templates"]
            out.append({"op": "add_member", "member": member})
        elif kind == "add_template":
            template = templates.get(op["template_id"])
            if template is None:
                out.append(
                    {"op": "remove_template", "member_id": op["member_id"], "template_id": op["template_id"]}
                )
            else:
                out.append({"op": "add_template", "member_id": op["member_id"], "template": template})
        else:
            out.append(dict(op))
    return out


def change_message(change: RosterChange, templates: Templates) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "roster_change",
        "id": change.change_id,
        "station_id": change.station_id,
        "version": int(change.version),
        "issued_at": round(time.time(), 3),
        "ops": expand_ops(change.ops, templates),
    }


def status_message(station_id: str, version: int, request_id: str | None) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "roster_status",
        "id": f"rs-{uuid.uuid4().hex[:20]}",
        "station_id": station_id,
        "request_id": request_id,
        "version": int(version),
        "issued_at": round(time.time(), 3),
    }


def _keys(session: Session, now: dt.datetime) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    trusted = signing_keys.trusted_keys(session, purpose="qr", now=now)
    trusted_kids = {k.kid for k in trusted}
    qr_keys = [
        {"kid": k.kid, "public_key": signing_keys.public_key_b64(k), "label": k.label[:100]} for k in trusted
    ]
    revoked = sorted(
        k.kid
        for k in session.scalars(select(SigningKey).where(SigningKey.purpose == "qr"))
        if k.kid not in trusted_kids
    )
    tokens = [
        {"nonce_hex": r.nonce_hex, "expires_at": int(r.expires_at.timestamp()), "reason": r.reason[:200]}
        for r in session.scalars(
            select(QrRevocation).where(QrRevocation.expires_at > now).order_by(QrRevocation.nonce_hex)
        )
    ]
    return qr_keys, revoked, tokens


def snapshot_messages(
    session: Session, cipher: TemplateCipher, station: Station, version: int, *, now: dt.datetime
) -> list[dict[str, Any]]:
    """The whole roster of `station` at `version`, in parts under MAX_PART_BYTES each.

    Built from the published member states on the station's *current* basis (the caller records
    that basis as built), i.e. what the changes up to `version` describe."""
    basis = state.current_basis(station)
    views: list[tuple[str, StationView]] = []
    for member_id, member in sorted(state.all_published(session).items()):
        seen = view(member, basis)
        if seen is not None:
            views.append((member_id, seen))
    templates = Templates(session, cipher)
    templates.load(t for _, seen in views for t in seen.templates)
    records: list[tuple[dict[str, Any], int]] = []
    for member_id, seen in views:
        record = expand_ops([add_member_op(member_id, seen)], templates)[0]["member"]
        records.append((record, len(json.dumps(record, separators=(",", ":"), ensure_ascii=False))))
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for record, cost in records:
        if groups[-1] and (size + cost > MAX_PART_BYTES or len(groups[-1]) >= MAX_SNAPSHOT_MEMBERS_PER_PART):
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += cost
    qr_keys, revoked_kids, revoked_tokens = _keys(session, now)
    snapshot_id = f"s{version}-{uuid.uuid4().hex[:16]}"
    issued_at = round(time.time(), 3)
    parts: list[dict[str, Any]] = []
    for index, members in enumerate(groups, start=1):
        first = index == 1
        parts.append(
            {
                "v": 1,
                "type": "roster_snapshot",
                "id": f"{snapshot_id}-{index}",
                "snapshot_id": snapshot_id,
                "station_id": station.station_id,
                "version": int(version),
                "issued_at": issued_at,
                "part": index,
                "parts": len(groups),
                "members": members,
                "qr_keys": qr_keys if first else [],
                "revoked_kids": revoked_kids if first else [],
                "revoked_tokens": revoked_tokens if first else [],
            }
        )
    return parts
