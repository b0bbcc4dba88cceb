"""Turning a member, station or key change into numbered roster changes for every affected station.

Called by the web layer (and the CLI, and ingest for on-site enrolments) *inside* the transaction
that changed the data, so the change, its `roster_changes` rows, the stations' `issued_version`
bumps and the new published state commit or fail together (docs/CENTRAL.md, "Schema"). The fan-out
worker publishes the rows afterwards (`central.roster.fanout`).

Versions: each station's changes are numbered 1, 2, 3, ... with no gaps (docs/mqtt.md): the rows
are written in the same transaction as `issued_version += n`, with the stations' rows locked in id
order first, so two staff actions touching many stations at once cannot deadlock and cannot take
the same number.

Only stations whose roster the centre has built (`roster_basis` set: they received a snapshot)
get incremental changes. A station that never asked has nothing to apply them to; its first
roster request is answered with a snapshot of everything (central.roster.requests).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from central.roster import state
from central.roster.view import SNAPSHOT_OP, MemberState, StationBasis, diff, view
from central.store import signing_keys
from central.store.tables import RosterChange, Station

MAX_OPS_PER_CHANGE = 500
#: Over this many ops for one station (a station admitting a new group of 10,000 members), a full
#: snapshot is cheaper for everyone than a stream of changes.
SNAPSHOT_OVER_OPS = 2000
#: Changes are kept under the stations' default `max_payload_bytes` (2 MiB) with room to spare.
MAX_CHANGE_BYTES = 900_000
EST_OP_BYTES = 500
EST_TEMPLATE_BYTES = 1400  # 128 floats rounded to 7 decimals, as JSON
KEYS_STATE = "~qr-keys"  # roster_published row of the QR keys the stations were told (not a member id)


def _estimate(op: Mapping[str, Any]) -> int:
    templates = 0
    if op.get("op") == "add_member":
        templates = len(op["member"].get("templates", []))
    elif op.get("op") == "add_template":
        templates = 1
    return EST_OP_BYTES + templates * EST_TEMPLATE_BYTES


def chunks(ops: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split ops into changes of at most MAX_OPS_PER_CHANGE ops and ~MAX_CHANGE_BYTES each."""
    out: list[list[dict[str, Any]]] = []
    size = 0
    for op in ops:
        cost = _estimate(op)
        if not out or len(out[-1]) >= MAX_OPS_PER_CHANGE or size + cost > MAX_CHANGE_BYTES:
            out.append([])
            size = 0
        out[-1].append(op)
        size += cost
    return out


def new_change_id(version: int) -> str:
    return f"r{version}-{uuid.uuid4().hex[:20]}"


def issue(
    session: Session, per_station: Mapping[str, Sequence[dict[str, Any]]], *, cause: str
) -> dict[str, int]:
    """Store each station's ops as its next change(s); returns station -> its new issued version."""
    planned = {sid: chunks(ops) for sid, ops in per_station.items() if ops}
    if not planned:
        return {}
    ids = sorted(planned)
    # Lock in a fixed order (PostgreSQL; SQLite serialises writers anyway): no deadlock between two
    # staff actions that both touch hundreds of stations.
    session.execute(
        select(Station.station_id)
        .where(Station.station_id.in_(ids))
        .order_by(Station.station_id)
        .with_for_update()
    )
    by_count: dict[int, list[str]] = {}
    for sid in ids:
        by_count.setdefault(len(planned[sid]), []).append(sid)
    issued: dict[str, int] = {}
    for count, sids in by_count.items():
        rows = session.execute(
            update(Station)
            .where(Station.station_id.in_(sids))
            .values(issued_version=Station.issued_version + count)
            .returning(Station.station_id, Station.issued_version)
            .execution_options(synchronize_session=False)
        ).all()
        issued.update({str(s): int(v) for s, v in rows})
    now = dt.datetime.now(dt.UTC)
    values: list[dict[str, Any]] = []
    for sid in ids:
        parts = planned[sid]
        first = issued[sid] - len(parts) + 1
        for offset, ops in enumerate(parts):
            version = first + offset
            values.append(
                {
                    "station_id": sid,
                    "version": version,
                    "change_id": new_change_id(version),
                    "ops": list(ops),
                    "cause": cause[:200],
                    "created_at": now,
                }
            )
    session.execute(insert(RosterChange), values)
    # ORM copies of these stations (a caller holding one) must not keep the old version.
    for sid in ids:
        cached = session.identity_map.get((Station, (sid,), None))
        if cached is not None:
            session.expire(cached, ["issued_version"])
    return issued


def _built_bases(session: Session) -> list[StationBasis]:
    rows = session.execute(select(Station.station_id, Station.roster_basis)).all()
    return [StationBasis.from_json(str(sid), b) for sid, b in rows if isinstance(b, dict) and b]


def member_changed(session: Session, member_id: str, *, cause: str | None = None) -> int:
    """The member was created, edited, suspended, re-activated, enrolled or deleted: tell every
    station whose view of the member changed. Returns how many stations get a change. `cause` is
    recorded on the changes (default `member:<id>`; an erasure's lets its confirmations be found)."""
    before = state.published(session, member_id)
    after = state.current_state(session, member_id)
    if before == after:
        return 0
    per_station: dict[str, list[dict[str, Any]]] = {}
    for station in _built_bases(session):
        ops = diff(member_id, view(before, station), view(after, station))
        if ops:
            per_station[station.station_id] = ops
    issue(session, per_station, cause=cause or f"member:{member_id}")
    state.publish(session, member_id, after)
    return len(per_station)


def station_changed(session: Session, station_id: str) -> int:
    """The station's admitted groups, face model or active flag changed: the members it gains or
    loses (or a snapshot when that is a lot). Returns the number of ops issued."""
    station = session.get(Station, station_id)
    if station is None or not station.roster_basis:
        return 0  # never built: its first roster request gets a snapshot on the current settings
    old, new = state.basis(station), state.current_basis(station)
    if old == new:
        return 0
    ops: list[dict[str, Any]] = []
    if new.face_model == old.face_model:
        for member_id, member in sorted(state.all_published(session).items()):
            ops.extend(diff(member_id, view(member, old), view(member, new)))
            if len(ops) > SNAPSHOT_OVER_OPS:
                break
    if new.face_model != old.face_model or len(ops) > SNAPSHOT_OVER_OPS:
        ops = [{"op": SNAPSHOT_OP}]
    if ops:
        issue(session, {station_id: ops}, cause=f"station:{station_id}")
    station.roster_basis = new.to_json()
    return len(ops)


def keys_changed(session: Session, *, now: dt.datetime) -> int:
    """QR keys were rotated or retired: `add_qr_key` / `revoke_qr_key` to every built station."""
    trusted = {k.kid: k for k in signing_keys.trusted_keys(session, purpose="qr", now=now)}
    told_row = state.published(session, KEYS_STATE)
    told = set(told_row.fields.get("kids", [])) if told_row is not None else set()
    ops: list[dict[str, Any]] = [
        {
            "op": "add_qr_key",
            "key": {"kid": kid, "public_key": signing_keys.public_key_b64(key), "label": key.label[:100]},
        }
        for kid, key in sorted(trusted.items())
        if kid not in told
    ]
    ops.extend({"op": "revoke_qr_key", "kid": kid} for kid in sorted(told - set(trusted)))
    if ops:
        issue(session, {s.station_id: ops for s in _built_bases(session)}, cause="qr_keys")
    state.publish(session, KEYS_STATE, MemberState(KEYS_STATE, {"kids": sorted(trusted)}, False))
    return len(ops)


def token_revoked(
    session: Session, *, nonce_hex: str, member_id: str | None, expires_at: int, reason: str
) -> int:
    """One QR pass revoked (a lost phone): `revoke_token` to every built station."""
    op = {
        "op": "revoke_token",
        "revocation": {
            "nonce_hex": nonce_hex,
            "member_id": member_id,
            "expires_at": expires_at,
            "reason": reason[:200],
        },
    }
    stations = _built_bases(session)
    issue(session, {s.station_id: [op] for s in stations}, cause="revoke_token")
    return len(stations)


def mark_built(session: Session, station: Station) -> None:
    """The station has been sent (or is being sent) a full snapshot on its current basis."""
    station.roster_basis = state.current_basis(station).to_json()
