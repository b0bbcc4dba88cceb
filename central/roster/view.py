"""What a station holds of a member, and the roster ops between two such views. Pure: no I/O.

The centre keeps no per-station copy of the roster (2,000 stations x 100,000 members would be 200
million rows). Instead, a member's *state* (fields + template references) and a station's *basis*
(groups it admits, face model, active) decide the member's *view* at that station: nothing (not
admitted there, pending approval, erased) or the member's fields plus the templates that station
may hold. A change is then `diff(view(before, station), view(after, station))`, for every station.

Which templates a station may hold ("enrol once, open everywhere", docs/CENTRAL.md): only with face
consent, only of the station's face model, and only if the member gave cross-station consent
(`scope = 'fleet'`) or the template was enrolled at that very station (its origin). A template the
centre no longer holds (`at_centre = False`: cross-station consent was withdrawn, so the centre
deleted its copy) stays in the view of its origin station, which keeps its own copy: the diff never
removes it there, and it is never sent anywhere.

Ops here are the contract's (docs/mqtt.md, "roster change") with one difference: templates are
named by id only. The vectors are read from the encrypted `face_templates` when the message is
built (`central.roster.messages`), so no face data ever sits in clear in `roster_changes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The member fields a station holds (contract `MemberRecord` without id and templates).
MEMBER_FIELDS = (
    "name",
    "phone",
    "groups",
    "kind",
    "valid_from",
    "valid_until",
    "status",
    "consent_face",
    "consent_cross_station",
)
SNAPSHOT_OP = "snapshot"  # an internal op: "this version is a full snapshot" (central.roster.changes)


@dataclass(frozen=True, slots=True)
class TemplateRef:
    template_id: str
    model: str
    scope: str  # "fleet" | "station"
    origin: str | None
    at_centre: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "model": self.model,
            "scope": self.scope,
            "origin": self.origin,
            "at_centre": self.at_centre,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TemplateRef:
        return cls(
            str(data["template_id"]),
            str(data["model"]),
            str(data["scope"]),
            data.get("origin"),
            bool(data.get("at_centre", True)),
        )


@dataclass(frozen=True, slots=True)
class MemberState:
    """The inputs that decide every station's view of one member (JSON round-trippable).

    `fields` are JSON-ready contract values (ISO strings with offset for times). `listed` is False
    for members no station may know yet (a phone registration awaiting approval)."""

    member_id: str
    fields: Mapping[str, Any]
    listed: bool
    templates: tuple[TemplateRef, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "fields": dict(self.fields),
            "listed": self.listed,
            "templates": [t.to_json() for t in self.templates],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemberState:
        return cls(
            str(data["member_id"]),
            dict(data["fields"]),
            bool(data["listed"]),
            tuple(TemplateRef.from_json(t) for t in data.get("templates", [])),
        )


@dataclass(frozen=True, slots=True)
class StationBasis:
    """What decides which members a station holds."""

    station_id: str
    allowed_groups: tuple[str, ...]
    face_model: str
    active: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed_groups": list(self.allowed_groups),
            "face_model": self.face_model,
            "active": self.active,
        }

    @classmethod
    def from_json(cls, station_id: str, data: Mapping[str, Any]) -> StationBasis:
        return cls(
            station_id,
            tuple(str(g) for g in data.get("allowed_groups", [])),
            str(data.get("face_model", "")),
            bool(data.get("active", True)),
        )


@dataclass(frozen=True, slots=True)
class StationView:
    """A member as one station holds it: fields and the ids of its templates there."""

    fields: Mapping[str, Any]
    templates: tuple[str, ...]


def admitted(member: MemberState, station: StationBasis) -> bool:
    """Whether the member is on this station's roster at all (suspended members are: refused at
    the door with their reason, not as strangers)."""
    if not station.active or not member.listed:
        return False
    if not station.allowed_groups:
        return True
    return bool(set(member.fields.get("groups") or ()) & set(station.allowed_groups))


def station_templates(member: MemberState, station: StationBasis) -> tuple[str, ...]:
    if not member.fields.get("consent_face"):
        return ()
    cross = bool(member.fields.get("consent_cross_station"))
    return tuple(
        t.template_id
        for t in member.templates
        if t.model == station.face_model
        and (t.origin == station.station_id or (cross and t.scope == "fleet" and t.at_centre))
    )


def view(member: MemberState | None, station: StationBasis) -> StationView | None:
    if member is None or not admitted(member, station):
        return None
    fields = {name: member.fields.get(name) for name in MEMBER_FIELDS}
    return StationView(fields, station_templates(member, station))


def add_member_op(member_id: str, seen: StationView) -> dict[str, Any]:
    record = {"member_id": member_id, **{k: v for k, v in seen.fields.items() if v is not None}}
    record["templates"] = list(seen.templates)
    return {"op": "add_member", "member": record}


def diff(member_id: str, before: StationView | None, after: StationView | None) -> list[dict[str, Any]]:
    """The ops that turn a station holding `before` into one holding `after` (in apply order)."""
    if after is None:
        return [] if before is None else [{"op": "remove_member", "member_id": member_id}]
    if before is None:
        return [add_member_op(member_id, after)]
    ops: list[dict[str, Any]] = []
    changed = {k: after.fields.get(k) for k in MEMBER_FIELDS if before.fields.get(k) != after.fields.get(k)}
    status = changed.pop("status", None)
    if changed:
        ops.append({"op": "update_member", "member_id": member_id, "fields": changed})
    if status == "suspended":
        ops.append({"op": "suspend_member", "member_id": member_id})
    elif status == "active":
        ops.append({"op": "activate_member", "member_id": member_id})
    if changed.get("consent_face") is False:
        return ops  # the station deletes every template of a member without face consent itself
    kept = set(after.templates)
    ops.extend(
        {"op": "remove_template", "member_id": member_id, "template_id": t}
        for t in before.templates
        if t not in kept
    )
    had = set(before.templates)
    ops.extend(
        {"op": "add_template", "member_id": member_id, "template_id": t}
        for t in after.templates
        if t not in had
    )
    return ops


def diff_all(
    members: Sequence[tuple[str, MemberState | None, MemberState | None]],
    before: StationBasis,
    after: StationBasis,
) -> list[dict[str, Any]]:
    """Ops for one station whose basis changed, over (member id, state before, state after)."""
    ops: list[dict[str, Any]] = []
    for member_id, old, new in members:
        ops.extend(diff(member_id, view(old, before), view(new, after)))
    return ops
