"""Enrolments made on site: queued in the outbox with the enrolment, built into a message when sent.

`enqueue_enrolment` runs inside the enrolment's own transaction (Station.enroll), so an enrolment
the centre will not hear about cannot exist. The outbox row holds only ids (and, when the
configuration allows photos, the photos): the template vectors stay encrypted in `face_templates`
until the moment of publishing, when `build_enrolment` decrypts them **only if the member then
carries cross-station consent**. Consent withdrawn, or templates deleted, between enrolment and
upload means nothing biometric leaves the station. The vectors travel as plain floats inside TLS
(the centre must match them, so it needs them in clear); docs/mqtt.md says so.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.template_cipher import TemplateCipher
from contract.messages import EnrolmentMember, EnrolmentMessage, EnrolmentTemplate, iso, iso_now
from models import events as event_store
from models.members import get_member
from models.tables import FaceTemplate, Member, OutboxItem

TOPIC_KIND = "enrolment"
REMOVAL_KIND = "template_removal"
MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PHOTOS = 10


def enqueue_enrolment(
    session: Session,
    *,
    member_id: str,
    template_ids: Sequence[str],
    photos_jpeg: Sequence[bytes] = (),
    include_photos: bool = False,
) -> OutboxItem:
    """Queue the upload of an on-site enrolment (flushed, not committed: the caller's transaction).

    `photos_jpeg` are kept only when `include_photos` ([mqtt] enrolment_photos) is true; they are
    dropped from the row once the broker has acknowledged it. Whether they (and the templates)
    are actually sent is decided at publish time from the member's consent.
    """
    photos: list[str] = []
    if include_photos:
        for photo in list(photos_jpeg)[:MAX_PHOTOS]:
            if isinstance(photo, bytes | bytearray) and 0 < len(photo) <= MAX_PHOTO_BYTES:
                photos.append(base64.b64encode(bytes(photo)).decode("ascii"))
    payload: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "member_id": member_id,
        "template_ids": [str(t) for t in template_ids],
        "enrolled_at": iso_now(),
    }
    if photos:
        payload["photos_jpeg_b64"] = photos
    return event_store.enqueue(session, topic_kind=TOPIC_KIND, payload=payload)


def enqueue_template_removal(
    session: Session, *, member_id: str, template_id: str, removed_by: str | None
) -> OutboxItem:
    """Queue "template X of member M was removed here" for the centre, in the removal's transaction.

    Sent for every removal, whether or not the template ever left the station (the centre may hold
    it from an earlier upload, or received it from elsewhere and passed it to this station): ids
    only, no face data. The centre withdraws it from every other station (docs/mqtt.md)."""
    payload: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "member_id": member_id,
        "template_id": template_id,
        "ts": iso_now(),
        "removed_by": removed_by[:100] if removed_by else None,
    }
    return event_store.enqueue(session, topic_kind=REMOVAL_KIND, payload=payload)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def member_record(member: Member) -> EnrolmentMember:
    return EnrolmentMember(
        member_id=member.member_id,
        name=member.name,
        phone=member.phone,
        groups=list(member.groups or []),
        kind=member.kind,
        valid_from=_iso(member.valid_from),
        valid_until=_iso(member.valid_until),
        status=member.status,
        consent_face=bool(member.consent_face),
        consent_cross_station=bool(member.consent_cross_station),
        consent_at=_iso(member.consent_at),
    )


def build_enrolment(
    session: Session,
    cipher: Callable[[], TemplateCipher],
    *,
    model: str,
    station_id: str,
    seq: int,
    created_at: float,
    payload: dict[str, Any],
) -> EnrolmentMessage:
    """The message for an enrolment row, with templates and photos only under cross-station consent.

    `model` is the face model the station runs; each template is sent with the model that made it
    (stored with the row: a station that switched encoders keeps its older model's templates)."""
    member_id = str(payload.get("member_id", ""))
    wanted = [str(t) for t in payload.get("template_ids", [])]
    member = get_member(session, member_id) if member_id else None
    templates: list[EnrolmentTemplate] = []
    withheld = 0
    photos: list[str] = []
    if member is not None:
        rows = list(
            session.execute(
                select(
                    FaceTemplate.template_id,
                    FaceTemplate.key_fingerprint,
                    FaceTemplate.ciphertext,
                    FaceTemplate.model,
                ).where(FaceTemplate.member_id == member_id, FaceTemplate.template_id.in_(wanted))
            )
        )
        if member.consent_cross_station and member.consent_face:
            loaded = cipher()
            for template_id, fingerprint, blob, row_model in rows:
                vector = loaded.decrypt(member_id, template_id, fingerprint, blob, row_model or model)
                templates.append(
                    EnrolmentTemplate(
                        template_id=template_id,
                        model=row_model or model,
                        vector=[float(x) for x in vector.tolist()],
                    )
                )
            photos = [str(p) for p in payload.get("photos_jpeg_b64", [])]
        else:
            withheld = len(rows)
    return EnrolmentMessage(
        id=str(payload.get("id") or f"enrolment-{seq}"),
        station_id=station_id,
        seq=seq,
        ts=str(payload.get("enrolled_at") or iso(created_at)),
        member=None if member is None else member_record(member),
        templates=templates,
        templates_withheld=withheld,
        photos_jpeg_b64=photos,
    )


def scrub_photos(session: Session, seqs: Sequence[int]) -> None:
    """Drop the photos from delivered enrolment rows: they were only kept to be sent once."""
    for item in session.scalars(select(OutboxItem).where(OutboxItem.seq.in_(list(seqs)))):
        if "photos_jpeg_b64" in (item.payload or {}):
            item.payload = {k: v for k, v in item.payload.items() if k != "photos_jpeg_b64"}
    session.flush()
