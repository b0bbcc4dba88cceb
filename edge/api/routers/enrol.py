"""Enrolment on site: capture from the live camera or upload a photo, review, then enrol.

1. `POST /api/v1/captures` (the camera's newest frame) or `POST /api/v1/captures/upload` (a photo
   file): decoded with the same hostile-input rules as the CLI, checked with the same quality gates,
   kept in memory for review (never on disk: nobody has consented yet) and answered with the verdict.
2. `POST /api/v1/enrolments` with the person's details, consent and the capture ids: the station's
   own `enroll` (quality, same-person and duplicate checks, one transaction; refused means nothing
   stored), then validity and status. A refusal carries the problems in words and as codes.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import APIRouter, Depends, File, Path, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from edge.api.captures import CAPTURE_ID_PATTERN, Capture, new_capture_id
from edge.api.context import ApiContext
from edge.api.deps import ContextDep, CurrentInstaller, StationDep, actor, current_installer
from edge.api.errors import ApiError
from edge.api.faces import STALE_FRAME_S, check_to_json, jpeg, png
from edge.api.retry import retry_locked
from edge.api.schemas import MemberFields, MemberId, MemberOut, new_member_id
from edge.enrolment import QUALITY_MESSAGES
from edge.station import RefusedError

router = APIRouter(prefix="/api/v1", tags=["enrolment"], dependencies=[Depends(current_installer)])

CaptureId = Annotated[str, Path(pattern=CAPTURE_ID_PATTERN)]
PREVIEW_SIDE = 800
_MESSAGE_CODES = {message: reason for reason, message in QUALITY_MESSAGES.items()}
#: `recognizer.duplicates.Finding.describe()`: "<photo>: <phrase> member '<id>' (distance d <= limit, ...".
_FINDING = re.compile(
    r"^(?P<photo>.*?): (?P<phrase>is the same person for the door as|is a lookalike of|may be the same "
    r"person as|is not certainly the same person as) member '(?P<member>[^']+)' \(distance "
    r"(?P<distance>[0-9.]+) [<>=]+ (?P<limit>[0-9.]+)"
)
_FINDING_CODES = {
    "is the same person for the door as": "same_person",
    "is a lookalike of": "lookalike",
    "may be the same person as": "possible_duplicate",
    "is not certainly the same person as": "unconfirmed_same_person",
}


class CaptureCheck(BaseModel):
    ok: bool
    problem: str | None
    code: str | None = Field(description="Stable word: no_face, several_faces, face_too_small, too_dark, ...")
    hint: str | None
    quality: dict[str, Any]


class CaptureOut(BaseModel):
    capture_id: str
    source: str
    name: str
    width: int
    height: int
    check: CaptureCheck
    image_url: str
    expires_in_s: int


class EnrolmentRequest(MemberFields):
    member_id: MemberId | None = Field(None, description="Generated when absent; an existing id adds photos.")
    capture_ids: list[Annotated[str, Field(pattern=CAPTURE_ID_PATTERN)]] = Field(min_length=1, max_length=10)
    consent_face: bool = Field(
        description="The person agreed to face recognition at this station (required)."
    )
    confirm_different_person: bool = Field(
        False,
        description="The installer checked that a face near another member (lookalike, possible "
        "duplicate) is someone else; lookalikes then both require the pass. Never overrides "
        "same_person.",
    )
    confirm_same_person: bool = Field(
        False, description="The installer checked that photos added to this existing member show them."
    )
    force: bool = Field(False, description="Older name of confirm_different_person.")


class Finding(BaseModel):
    """An existing member a face is close to (`recognizer.duplicates.Finding`)."""

    source: str
    member_id: str
    kind: str = Field(description="same_person | lookalike | possible_duplicate | unconfirmed_same_person")
    distance: float
    limit: float
    policy: str


class EnrolmentOut(BaseModel):
    member: MemberOut
    created: bool
    templates_added: int
    findings: list[Finding] = Field(description="What the installer confirmed (empty when nothing)")
    requires_pass: list[str] = Field(description="Members who now require the pass (confirmed lookalikes)")
    quality: list[dict[str, Any]]


def classify_problem(text: str) -> dict[str, Any]:
    """A refusal line from `edge.enrolment` as {code, photo, ...} for the page to translate."""
    photo, _, rest = text.partition(": ")
    if not rest:
        photo, rest = "", text
    found = _FINDING.search(text)
    if found:
        return {
            "code": _FINDING_CODES[found["phrase"]],
            "photo": found["photo"],
            "member_id": found["member"],
            "distance": float(found["distance"]),
            "limit": float(found["limit"]),
            "text": text,
        }
    if "do not look like the same person" in text:
        return {"code": "not_same_person", "photo": "", "text": text}
    if rest in _MESSAGE_CODES:
        return {"code": _MESSAGE_CODES[rest], "photo": photo, "text": text}
    if rest == "no face found":
        return {"code": "no_face", "photo": photo, "text": text}
    if "faces found" in rest:
        return {"code": "several_faces", "photo": photo, "text": text}
    return {"code": "other", "photo": photo, "text": text}


def refusal_codes(exc: RefusedError) -> list[dict[str, Any]]:
    """Every refusal line as a code; a finding's numbers come from the finding itself (the text
    rounds them to three places, and the installer compares them with the limit)."""
    exact = {(f["source"], f["member_id"], f["kind"]): f for f in exc.findings}
    codes = []
    for text in exc.problems:
        code = classify_problem(text)
        finding = exact.get((code.get("photo"), code.get("member_id"), code["code"]))
        if finding is not None:
            code.update(distance=finding["distance"], limit=finding["limit"], policy=finding["policy"])
        codes.append(code)
    return codes


def _refusal_code(message: str) -> str:
    if "already exists with the name" in message:
        return "name_mismatch"
    if "templates; the limit is" in message:
        return "too_many_photos"
    return "enrolment_refused"


def _store(
    ctx: ApiContext, owner: str, source: str, data: bytes, bgr: np.ndarray, rgb: np.ndarray
) -> CaptureOut:
    capture_id = new_capture_id()
    name = f"{source}-{capture_id[:8]}"
    check = ctx.faces.check(name, rgb)
    capture = Capture(
        capture_id=capture_id,
        owner=owner,
        source="camera" if source == "camera" else "upload",
        data=data,
        preview=jpeg(bgr, max_side=PREVIEW_SIDE),
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        check=check_to_json(check),
        created=ctx.captures.now(),
    )
    ctx.captures.add(capture)
    return CaptureOut(**capture.to_json(ctx.captures.ttl_s, ctx.captures.now()))


@router.post(
    "/captures",
    response_model=CaptureOut,
    status_code=201,
    responses={503: {"description": "No camera frame"}},
)
def capture_from_camera(ctx: ContextDep, installer: CurrentInstaller) -> CaptureOut:
    """Take the camera's newest frame for review, with the enrolment quality verdict."""
    frame = ctx.services.latest_frame()
    if frame is None:
        raise ApiError(503, "no camera frame yet: is the camera connected?", "no_camera")
    if time.monotonic() - frame.captured_mono > STALE_FRAME_S:
        raise ApiError(
            503, "the camera has sent no new frame for a while (down or reconnecting)", "no_camera"
        )
    ctx.services.note_enrolment()  # the door's refusals of this person do not count toward lockouts
    bgr = np.array(frame.image, dtype=np.uint8, copy=True)
    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return _store(ctx, installer.username, "camera", png(bgr), bgr, rgb)


@router.post(
    "/captures/upload",
    response_model=CaptureOut,
    status_code=201,
    responses={413: {"description": "Too large"}, 422: {"description": "Not a usable image"}},
)
def upload_photo(
    ctx: ContextDep,
    installer: CurrentInstaller,
    photo: Annotated[UploadFile, File(description="A JPEG, PNG, WebP or BMP photo of one face")],
) -> CaptureOut:
    """Upload a photo for review (the file name is ignored; nothing is written to disk)."""
    limit = ctx.settings.max_upload_mb * 1024 * 1024
    data = photo.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(
            413, f"the photo is larger than the {ctx.settings.max_upload_mb} MiB limit", "too_large"
        )
    rgb = ctx.decode(data)
    bgr = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return _store(ctx, installer.username, "upload", data, bgr, rgb)


@router.get("/captures", response_model=list[CaptureOut])
def list_captures(ctx: ContextDep, installer: CurrentInstaller) -> list[CaptureOut]:
    """This installer's captures still waiting for review."""
    now = ctx.captures.now()
    return [CaptureOut(**c.to_json(ctx.captures.ttl_s, now)) for c in ctx.captures.list(installer.username)]


@router.get(
    "/captures/{capture_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "Unknown or expired"}},
)
def capture_image(capture_id: CaptureId, ctx: ContextDep, installer: CurrentInstaller) -> Response:
    """The capture as a JPEG for the review screen."""
    capture = ctx.captures.get(capture_id, installer.username)
    if capture is None:
        raise ApiError(404, "no such capture (expired, enrolled or discarded)", "capture_not_found")
    return Response(capture.preview, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.delete(
    "/captures/{capture_id}", status_code=204, responses={404: {"description": "Unknown or expired"}}
)
def discard_capture(capture_id: CaptureId, ctx: ContextDep, installer: CurrentInstaller) -> Response:
    """Throw a capture away (retake)."""
    if not ctx.captures.discard(capture_id, installer.username):
        raise ApiError(404, "no such capture (expired, enrolled or discarded)", "capture_not_found")
    return Response(status_code=204)


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@router.post(
    "/enrolments",
    response_model=EnrolmentOut,
    status_code=201,
    responses={404: {"description": "Capture unknown"}, 422: {"description": "Refused: nothing stored"}},
)
def enrol(
    body: EnrolmentRequest, ctx: ContextDep, station: StationDep, installer: CurrentInstaller
) -> EnrolmentOut:
    """Enrol a person from reviewed captures: same checks as `yizhan enroll`; refused stores nothing."""
    if not body.consent_face:
        raise ApiError(
            422, "the person must consent to face recognition before a face is enrolled", "consent_required"
        )
    captures: list[Capture] = []
    for capture_id in dict.fromkeys(body.capture_ids):
        capture = ctx.captures.get(capture_id, installer.username)
        if capture is None:
            raise ApiError(
                404, f"capture {capture_id} is unknown or expired: capture again", "capture_not_found"
            )
        captures.append(capture)
    member_id = body.member_id or new_member_id()
    existing = station.get_member(member_id)
    # `enroll` creates members active and unbounded: what differs is applied right after it.
    defaults: dict[str, Any] = {"valid_from": None, "valid_until": None, "status": "active"}
    updates = {
        f: getattr(body, f)
        for f in defaults
        if (f in body.model_fields_set if existing is not None else getattr(body, f) != defaults[f])
    }
    if existing is not None:  # the stored period must stay coherent with what changes
        start = updates.get("valid_from", _parse(existing["valid_from"]))
        end = updates.get("valid_until", _parse(existing["valid_until"]))
        if start is not None and end is not None and end <= start:
            raise ApiError(422, "valid_until must be later than valid_from", "invalid_value")
    images = [(c.name, ctx.decode(c.data)) for c in captures]
    try:
        outcome = retry_locked(
            lambda: ctx.faces.enroll(
                member_id=member_id,
                name=body.name,
                images=images,
                groups=body.groups,
                kind=body.kind,
                phone=body.phone,
                consent_face=True,
                consent_cross_station=body.consent_cross_station,
                confirm_different_person=body.confirm_different_person or body.force,
                confirm_same_person=body.confirm_same_person,
                origins={c.name: c.source for c in captures},
                enrolled_by=actor(installer),
            ),
            what="member_enrolled",
        )
    except RefusedError as exc:
        raise ApiError(
            422,
            str(exc),
            _refusal_code(str(exc)),
            problems=exc.problems,
            codes=refusal_codes(exc),
        ) from None
    if updates:
        retry_locked(lambda: station.update_member(member_id, **updates), what="member_enrolled")
    for capture in captures:
        ctx.captures.discard(capture.capture_id, installer.username)
    findings = [Finding(**finding.to_json()) for finding in outcome.plan.findings]
    ctx.audit(
        "member_enrolled",
        by=actor(installer),
        member_id=member_id,
        details={
            "created": outcome.created,
            "templates": len(outcome.template_ids),
            "sources": [c.source for c in captures],
            "findings": [
                {"member_id": f.member_id, "kind": f.kind, "distance": f.distance} for f in findings
            ],
            "confirmed": {
                "different_person": body.confirm_different_person or body.force,
                "same_person": body.confirm_same_person,
            },
            "requires_pass": outcome.requires_pass,
        },
    )
    ctx.refresh_roster()
    ctx.services.note_enrolment(done=True)  # the person at the door is a member now: no lockout
    member = station.get_member(member_id)
    assert member is not None
    return EnrolmentOut(
        member=MemberOut(**member),
        created=outcome.created,
        templates_added=len(outcome.template_ids),
        findings=findings,
        requires_pass=outcome.requires_pass,
        quality=[p.quality for p in outcome.plan.photos],
    )
