"""The station's local services, wired from one config: store, keys, roster, face and QR checks.

The CLI (and later the daemon and the local API) call these; they hold no hardware. Expensive parts
are built on first use: listing members must not load dlib (~1 s) or ask for the template key.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher, TemplateDecryptError, load_or_create_key
from edge.config import Config, ConfigError
from edge.enrolment import EnrolmentPlan, PhotoCheck, check_photo, plan_enrolment
from models import members as member_store
from models import qr_store
from models.database import make_session_factory, migrate, open_engine
from recognizer import qr_token
from recognizer.encoder import FaceModel, FaceModelError, ModelIdentity
from recognizer.face_pipeline import DetectionSettings, FacePipeline
from recognizer.images import MAX_PIXELS, ImageError, decode_image
from recognizer.qr_check import QrChecker, QrPolicy, ReplayGuardError
from recognizer.quality import QualityPolicy
from recognizer.results import FaceResult, QrResult
from recognizer.roster import MemberInfo, RosterHolder, RosterSnapshot
from recognizer.scoring import ScoringPolicy, preset

log = logging.getLogger(__name__)

ROSTER_VERSION_KEY = "roster_version"


class StationError(Exception):
    """A request the station refuses; the message is meant for the person at the keyboard."""


class RefusedError(StationError):
    """Refused input (a bad photo, a duplicate face, an unknown member): exit code 2 in the CLI."""

    def __init__(
        self, message: str, problems: Sequence[str] = (), findings: Sequence[dict[str, Any]] = ()
    ) -> None:
        super().__init__(message)
        self.problems = list(problems)
        #: The enrolment findings that refused the call (`recognizer.duplicates.Finding.to_json`).
        self.findings = list(findings)


@dataclass(frozen=True, slots=True)
class EnrolmentOutcome:
    member_id: str
    created: bool
    template_ids: list[str]
    plan: EnrolmentPlan
    #: Members who now require the pass (the enrolled one and their confirmed lookalikes).
    requires_pass: list[str] = field(default_factory=list)


def photo_pixel_limit(config: Config) -> int:
    """The most pixels any photo may have on this station: uploads to the page, `yizhan enroll`,
    `identify` and `qr check` alike ([api] max_upload_megapixels). A 49 MP phone photo decodes to
    ~150 MB of RGB and costs ~1 GB on the way through detection: refused, with its size, before
    any pixel is decoded."""
    return config.api.max_photo_pixels


def read_photo(path: Path, *, max_pixels: int = MAX_PIXELS) -> npt.NDArray[np.uint8]:
    """Read and decode a photo file; every failure becomes a RefusedError naming the file."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise RefusedError(f"{path}: is a directory, not a photo") from None
    except OSError as exc:
        raise RefusedError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return decode_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise RefusedError(f"{path}: {exc}") from None


class Station:
    def __init__(self, config: Config, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env = dict(os.environ) if env is None else dict(env)
        self.data_dir = config.storage.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = open_engine(config.storage.database_path)
        self.schema_version = migrate(self.engine)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        # Read-then-write transactions take the write lock up front (BEGIN IMMEDIATE): a deferred one
        # fails at once with "database is locked" when the daemon commits an event in between.
        self.write_sessions: sessionmaker[Session] = make_session_factory(self.engine, immediate=True)
        self.roster = RosterHolder()
        self._roster_loaded = False
        self._faces_broken_version: int | None = None
        self._members_cache: tuple[int, Mapping[str, MemberInfo]] | None = None

    def close(self) -> None:
        self.engine.dispose()

    # -- lazily built parts -------------------------------------------------------------------

    @cached_property
    def cipher(self) -> TemplateCipher:
        key = load_or_create_key(key_file=self.config.storage.key_file, data_dir=self.data_dir, env=self.env)
        return TemplateCipher(key)

    @cached_property
    def face_model(self) -> FaceModel:
        """The configured encoder, loaded (dlib ~1 s; an ONNX model adds dlib's 68-point predictor)."""
        from recognizer.encoder import load_face_model

        rec = self.config.recognition
        try:
            return load_face_model(rec.encoder, rec.onnx_model, rec.onnx_input, rec.onnx_backend)
        except FaceModelError as exc:
            raise ConfigError(_model_config_error(rec.onnx_model, exc)) from None

    @cached_property
    def model_identity(self) -> ModelIdentity:
        """Name and embedding length of the active face model, without loading dlib.

        Templates are stored under this name and only this model's are loaded into the roster;
        scoring presets are looked up by it. A loaded (or injected) model is its own authority.
        """
        loaded = self.__dict__.get("face_model")
        if loaded is not None:
            return ModelIdentity(str(loaded.name), int(loaded.dim))
        from recognizer.encoder import describe_face_model

        rec = self.config.recognition
        try:
            return describe_face_model(rec.encoder, rec.onnx_model, rec.onnx_input)
        except FaceModelError as exc:
            raise ConfigError(_model_config_error(rec.onnx_model, exc)) from None

    @cached_property
    def quality_policy(self) -> QualityPolicy:
        rec = self.config.recognition
        return QualityPolicy(
            min_face_px=rec.min_face_px,
            min_sharpness=rec.min_sharpness,
            min_brightness=rec.min_brightness,
            max_brightness=rec.max_brightness,
            max_roll_deg=rec.max_roll_deg,
            max_yaw=rec.max_yaw,
        )

    def _pipeline(self, max_side: int, fallback_side: int) -> FacePipeline:
        rec = self.config.recognition
        settings = DetectionSettings(
            detect_max_side=max_side,
            fallback_max_side=fallback_side,
            upsample=rec.upsample,
            min_score=rec.min_detection_score,
        )
        return FacePipeline(self.face_model, settings, self.quality_policy)

    @cached_property
    def pipeline(self) -> FacePipeline:
        """The door's pipeline: detection sized for camera frames (the latency-critical path)."""
        return self._pipeline(
            self.config.recognition.detect_max_side, self.config.recognition.detect_fallback_side
        )

    @cached_property
    def photo_pipeline(self) -> FacePipeline:
        """For photos (enrolment, `identify`): a larger detection size, same model and quality gates."""
        return self._pipeline(self.config.recognition.photo_detect_max_side, 0)

    @cached_property
    def scoring_policy(self) -> ScoringPolicy:
        """The configured preset (or the operating point `yizhan calibrate` wrote, when
        `[recognition] operating_point` names one), with any overrides (then named '<name>*': not
        the measured numbers)."""
        rec = self.config.recognition
        if rec.operating_point is not None:
            from edge.calibrate import load_operating_point

            base = load_operating_point(rec.operating_point, model=self.face_model_name)
        else:
            try:
                base = preset(rec.preset, self.face_model_name)
            except ValueError as exc:
                raise ConfigError(f"[recognition] preset = {rec.preset!r}: {exc}") from None
        try:
            return base.with_overrides(
                accept_distance=rec.threshold,
                min_margin=rec.min_margin,
                max_ratio=rec.max_ratio,
                same_person_max_distance=rec.same_person_max_distance,
            )
        except ValueError as exc:
            raise ConfigError(f"[recognition] threshold / min_margin / max_ratio: {exc}") from None

    @property
    def face_model_name(self) -> str:
        return self.model_identity.name

    @property
    def match_policy(self) -> ScoringPolicy:
        """What faces are identified with (kept under its old name for callers)."""
        return self.scoring_policy

    def needs_two_factor(self, member: MemberInfo | None) -> bool:
        """Whether this member must confirm a QR code with their face ([recognition] two_factor*,
        or the member requires the pass: a confirmed lookalike of another member)."""
        rec = self.config.recognition
        if member is None:
            return False
        return rec.two_factor or member.requires_pass or bool(set(member.groups) & set(rec.two_factor_groups))

    @cached_property
    def qr_checker(self) -> QrChecker:
        policy = QrPolicy(
            max_clock_skew_s=self.config.qr.max_clock_skew_s, station_id=self.config.station.station_id
        )
        return QrChecker(policy, qr_store.SqlReplayGuard(self.sessions, error_factory=ReplayGuardError))

    # -- roster ---------------------------------------------------------------------------------

    def load_roster(self) -> RosterSnapshot:
        """Decrypt every template of the active face model into a new snapshot and publish it
        (errors are loud). Other models' templates stay stored, unused (see `members_without_face`)."""
        identity = self.model_identity
        with self.sessions() as session:
            snapshot = member_store.load_roster(session, self.cipher, model=identity.name, dim=identity.dim)
        self.roster.swap(snapshot)
        self._roster_loaded = True
        return snapshot

    def _bump_roster_version(self, session: Session) -> None:
        current = int(member_store.get_state(session, ROSTER_VERSION_KEY, "0") or 0)
        member_store.set_state(session, ROSTER_VERSION_KEY, str(current + 1))

    # -- members --------------------------------------------------------------------------------

    def add_member(self, **fields: Any) -> dict[str, Any]:
        with self.write_sessions() as session, session.begin():
            member = member_store.add_member(session, **fields)
            self._bump_roster_version(session)
            return self._member_json(session, member)

    def list_members(self) -> list[dict[str, Any]]:
        with self.sessions() as session:
            models = member_store.template_models(session)
            return [self._member_json(session, m, models) for m in member_store.list_members(session)]

    def get_member(self, member_id: str) -> dict[str, Any] | None:
        with self.sessions() as session:
            member = member_store.get_member(session, member_id)
            return None if member is None else self._member_json(session, member)

    def members_without_face(self) -> list[dict[str, Any]]:
        """Members with face templates of another model only: after an encoder switch they have no
        face at this door until enrolled again (their QR pass keeps working)."""
        return [m for m in self.list_members() if m["needs_reenrolment"]]

    def prune_other_model_templates(self) -> dict[str, int]:
        """Delete the templates of every face model but the active one ({model: count}).

        After an encoder switch they are kept (switching back finds them; members list says who
        still has only those), but no model here uses them: once members are re-enrolled, an
        installer removes them, as the rules on biometric data ask (kept no longer than needed).
        """
        with self.write_sessions() as session, session.begin():
            removed = member_store.delete_templates_not_of(session, self.face_model_name)
            if removed:
                self._bump_roster_version(session)
        return removed

    def update_member(self, member_id: str, **fields: Any) -> dict[str, Any]:
        with self.write_sessions() as session, session.begin():
            member = member_store.update_member(session, member_id, **fields)
            self._bump_roster_version(session)
            return self._member_json(session, member)

    def remove_member(self, member_id: str) -> bool:
        with self.write_sessions() as session, session.begin():
            removed = member_store.remove_member(session, member_id)
            if removed:
                self._bump_roster_version(session)
            return removed

    def _member_json(
        self, session: Session, member: Any, models: Mapping[str, Mapping[str, int]] | None = None
    ) -> dict[str, Any]:
        """A member as the CLI and the API show it. `templates` counts the active face model's
        templates (what the door matches); `templates_by_model` all of them; `needs_reenrolment`
        says the member has templates, none of them usable by the active model."""
        by_model = dict(
            models.get(member.member_id, {})
            if models is not None
            else member_store.template_models(session).get(member.member_id, {})
        )
        active = self.face_model_name
        templates = by_model.get(active, 0)
        return {
            "member_id": member.member_id,
            "name": member.name,
            "phone": member.phone,
            "groups": list(member.groups or []),
            "kind": member.kind,
            "status": member.status,
            "valid_from": _iso(member.valid_from),
            "valid_until": _iso(member.valid_until),
            "consent_face": member.consent_face,
            "consent_cross_station": member.consent_cross_station,
            "templates": templates,
            "requires_pass": bool(member.requires_pass),
            "lookalikes": list(member.lookalikes or []),
            "templates_by_model": by_model,
            "face_model": active,
            "needs_reenrolment": templates == 0 and bool(by_model),
        }

    # -- enrolment ------------------------------------------------------------------------------

    def check_photos(self, photos: Sequence[Path]) -> list[PhotoCheck]:
        checks = []
        for path in photos:
            try:
                rgb = read_photo(path, max_pixels=photo_pixel_limit(self.config))
            except RefusedError as exc:
                checks.append(PhotoCheck(str(path), None, {}, str(exc).split(": ", 1)[-1]))
                continue
            checks.append(check_photo(self.photo_pipeline, str(path), rgb))
        return checks

    def check_images(self, images: Sequence[tuple[str, npt.NDArray[np.uint8]]]) -> list[PhotoCheck]:
        """Quality-check decoded images (uploads, camera captures); `name` labels each in messages."""
        return [check_photo(self.photo_pipeline, name, rgb) for name, rgb in images]

    def enroll(
        self,
        *,
        member_id: str,
        name: str,
        photos: Sequence[Path] = (),
        images: Sequence[tuple[str, npt.NDArray[np.uint8]]] = (),
        groups: Sequence[str] = (),
        kind: str | None = None,
        phone: str | None = None,
        consent_face: bool = True,
        consent_cross_station: bool = False,
        force: bool = False,
        confirm_same_person: bool = False,
        confirm_different_person: bool = False,
        origins: Mapping[str, str] | None = None,
        enrolled_by: str | None = None,
    ) -> EnrolmentOutcome:
        """Check every photo file and decoded image (an upload or a camera capture, named), then
        store the member (if new) and all templates in one transaction; refused: nothing stored.

        `confirm_same_person`: the installer checked that photos added to an existing member show
        them; `confirm_different_person` (`force`, its older name): that a face near another member
        is someone else (lookalikes then both require the pass). `origins` maps a photo's name to
        how it was taken ("upload", "camera"; files default to "photo"); `enrolled_by` who did it.
        """
        confirm_different_person = confirm_different_person or force
        count = len(photos) + len(images)
        if not count:
            raise RefusedError("no photo given")
        limit = self.config.recognition.max_templates_per_member
        with self.sessions() as session:
            existing = member_store.get_member(session, member_id)
            have = member_store.template_count(session, member_id, self.face_model_name) if existing else 0
        if existing is not None and existing.name != name:
            raise RefusedError(
                f"member {member_id!r} already exists with the name {existing.name!r}; "
                "use the same name to add photos, or another member id"
            )
        if have + count > limit:
            raise RefusedError(
                f"member {member_id!r} would have {have + count} templates; the limit is {limit}"
            )
        checks = self.check_photos(photos) + self.check_images(images)
        roster = self.load_roster()
        rec = self.config.recognition
        plan = plan_enrolment(
            member_id,
            checks,
            roster,
            policy=self.scoring_policy,
            same_person_max_distance=self.scoring_policy.same_person_max_distance,
            max_templates=rec.enrol_templates,
            existing_member=existing is not None and have > 0,
            confirm_same_person=confirm_same_person,
            confirm_different_person=confirm_different_person,
        )
        if not plan.ok:
            raise RefusedError(
                "enrolment refused, nothing was stored",
                plan.all_problems(),
                [f.to_json() for f in plan.blocking],
            )
        now = dt.datetime.now(dt.UTC)
        with self.write_sessions() as session, session.begin():
            created = member_store.get_member(session, member_id) is None
            if created:
                member_store.add_member(
                    session,
                    member_id=member_id,
                    name=name,
                    phone=phone,
                    groups=tuple(groups),
                    kind=kind,
                    consent_face=consent_face,
                    consent_cross_station=consent_cross_station,
                )
            else:
                # Enrolling a face for an existing (e.g. QR-only) member is the moment they consent to
                # face use here; cross-station consent is only ever widened by an explicit flag.
                changes: dict[str, Any] = {"consent_face": True}
                if consent_cross_station:
                    changes["consent_cross_station"] = True
                member_store.update_member(session, member_id, **changes)
            kept = plan.kept()
            template_ids: list[str] = []
            for origin in dict.fromkeys(_origin(p.source, origins) for p in kept):
                batch = [p for p in kept if _origin(p.source, origins) == origin]
                qualities = []
                for photo in batch:
                    quality = dict(photo.quality)
                    quality["enrolled_at"] = now.isoformat()
                    quality["policy"] = self.scoring_policy.name
                    flagged = [f.to_json() for f in plan.findings if f.source == photo.source]
                    if flagged:
                        quality["findings"] = flagged
                        quality["confirmed"] = {
                            "same_person": confirm_same_person,
                            "different_person": confirm_different_person,
                        }
                    qualities.append(quality)
                template_ids += member_store.add_templates(
                    session,
                    self.cipher,
                    member_id=member_id,
                    encodings=[p.encoding for p in batch if p.encoding is not None],
                    qualities=qualities,
                    sources=[Path(p.source).name for p in batch],
                    origin=origin,
                    enrolled_by=enrolled_by,
                    model=self.model_identity.name,
                    dim=self.model_identity.dim,
                )
            flagged_members: list[str] = []
            for other, distance in sorted(plan.lookalikes.items()):
                # A confirmed lookalike pair: the door asks both for the pass from now on.
                member_store.add_lookalike(
                    session, member_id, other=other, distance=distance, confirmed_by=enrolled_by
                )
                if member_store.get_member(session, other) is not None:
                    member_store.add_lookalike(
                        session, other, other=member_id, distance=distance, confirmed_by=enrolled_by
                    )
                    flagged_members.append(other)
            if flagged_members:
                flagged_members.insert(0, member_id)
            if self.config.mqtt.enabled:
                # Queued for the centre in the same transaction (templates only for members with
                # cross-station consent: sync.enrolment decides what may leave the station).
                from sync.enrolment import enqueue_enrolment

                enqueue_enrolment(session, member_id=member_id, template_ids=template_ids)
            self._bump_roster_version(session)
        log.info(
            "enrolled",
            extra={
                "fields": {
                    "event": "enrolled",
                    "member_id": member_id,
                    "templates": len(template_ids),
                    "findings": len(plan.findings),
                    "requires_pass": flagged_members,
                    "by": enrolled_by,
                }
            },
        )
        return EnrolmentOutcome(member_id, created, template_ids, plan, flagged_members)

    # -- templates ------------------------------------------------------------------------------

    def list_templates(self, member_id: str) -> list[dict[str, Any]]:
        """A member's templates: when, how (photo / upload / camera / centre), quality, by whom."""
        with self.sessions() as session:
            return [_template_json(row) for row in member_store.list_templates(session, member_id)]

    def remove_template(self, template_id: str, *, removed_by: str | None = None) -> dict[str, Any] | None:
        """Delete one template (the roster is rebuilt); None when there is no such template.

        With sync on, the centre is told in the same transaction (`sync.enrolment`): it withdraws
        the template from every other station that received it ("enrol once, open everywhere"
        works both ways), so a wrong face removed here stops opening doors elsewhere too."""
        with self.write_sessions() as session, session.begin():
            row = member_store.get_template(session, template_id)
            if row is None:
                return None
            removed = _template_json(row)
            member_store.remove_template(session, template_id)
            if self.config.mqtt.enabled:
                from sync.enrolment import enqueue_template_removal

                enqueue_template_removal(
                    session,
                    member_id=removed["member_id"],
                    template_id=template_id,
                    removed_by=removed_by,
                )
            self._bump_roster_version(session)
            removed["templates_left"] = member_store.template_count(session, removed["member_id"])
        log.info(
            "template removed",
            extra={
                "fields": {
                    "event": "template_removed",
                    "template_id": template_id,
                    "member_id": removed["member_id"],
                    "by": removed_by,
                }
            },
        )
        return removed

    # -- identification -------------------------------------------------------------------------

    def door_roster(self) -> RosterSnapshot:
        """The roster for the door loop, which must keep running when templates cannot be read.

        A wrong key or a corrupted template row makes `current_roster` raise (the CLI reports it
        and exits). At the door that must not stop QR entry and the exit button: the loop gets a
        members-only snapshot marked `faces_unavailable` (faces are skipped, not refused), and the
        error is logged loudly, once per roster version.
        """
        current = self.roster.current
        if current.faces_unavailable and self._faces_broken_version == self._stored_roster_version():
            return current  # nothing changed since it failed: do not decrypt everything again
        try:
            return self.current_roster()
        except TemplateDecryptError as exc:
            with self.sessions() as session:
                version = int(member_store.get_state(session, ROSTER_VERSION_KEY, "0") or 0)
                members = [member_store.member_info(m) for m in member_store.list_members(session)]
            if self._faces_broken_version != version:
                self._faces_broken_version = version
                log.critical(
                    "face templates unusable: face recognition is off, QR still works",
                    extra={"fields": {"event": "roster_error", "error": str(exc)}},
                )
            identity = self.model_identity
            snapshot = RosterSnapshot.build(
                (),
                members,
                version=version,
                faces_unavailable=str(exc),
                model=identity.name,
                dim=identity.dim,
            )
            if snapshot.version >= self.roster.current.version:
                self.roster.swap(snapshot)
                self._roster_loaded = True
            return snapshot

    def _stored_roster_version(self) -> int:
        with self.sessions() as session:
            return int(member_store.get_state(session, ROSTER_VERSION_KEY, "0") or 0)

    def current_roster(self) -> RosterSnapshot:
        """The published snapshot, rebuilt first if the stored roster changed since it was built."""
        stored = self._stored_roster_version()
        if (
            not self._roster_loaded
            or stored != self.roster.current.version
            or self.roster.current.faces_unavailable
        ):
            self.load_roster()
        return self.roster.current

    def identify(self, rgb: npt.NDArray[np.uint8]) -> FaceResult:
        """Identify the largest face in a photo (thorough detection; the door loop uses `pipeline`)."""
        return self.photo_pipeline.identify(rgb, self.current_roster(), self.match_policy)

    # -- QR -------------------------------------------------------------------------------------

    @property
    def signing_key_path(self) -> Path:
        return self.config.qr.signing_key_file or (self.config.storage.keys_dir / "qr_signing.pem")

    def init_keys(self, *, force: bool = False) -> str:
        """Create this station's (or the centre's) Ed25519 signing key and trust its public half."""
        path = self.signing_key_path
        if path.exists() and not force:
            raise RefusedError(f"a signing key already exists at {path}; use --force to replace it")
        private_raw, public_raw = qr_token.generate_signing_key()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(qr_token.private_key_to_pem(private_raw))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        kid = qr_token.kid_for(public_raw)
        with self.write_sessions() as session, session.begin():
            qr_store.add_public_key(session, kid=kid, public_key=public_raw, label="local")
        return kid

    def add_public_key(self, pem: bytes, label: str = "") -> str:
        try:
            raw = qr_token.public_key_from_pem(pem)
        except qr_token.QrKeyError as exc:
            raise RefusedError(str(exc)) from None
        kid = qr_token.kid_for(raw)
        with self.write_sessions() as session, session.begin():
            qr_store.add_public_key(session, kid=kid, public_key=raw, label=label)
        return kid

    def issue_qr(
        self,
        *,
        member_id: str,
        ttl_s: int | None = None,
        station: str | None = None,
        group: str | None = None,
        single_use: bool = False,
    ) -> str:
        path = self.signing_key_path
        try:
            private_raw = qr_token.private_key_from_pem(path.read_bytes())
        except FileNotFoundError:
            raise RefusedError(f"no signing key at {path}: run `yizhan keys init` first") from None
        except (OSError, qr_token.QrKeyError) as exc:
            raise RefusedError(f"cannot use the signing key at {path}: {exc}") from None
        with self.sessions() as session:
            member = member_store.get_member(session, member_id)
            if member is None:
                raise RefusedError(f"no member {member_id!r}")
            if member.status != "active":
                raise RefusedError(f"member {member_id!r} is {member.status}; no token issued")
        ttl = ttl_s if ttl_s is not None else self.config.qr.default_ttl_s
        try:
            return qr_token.issue_token(
                private_raw,
                member_id,
                now=int(time.time()),
                ttl_s=ttl,
                station=station,
                group=group,
                single_use=single_use,
            )
        except ValueError as exc:
            raise RefusedError(str(exc)) from None

    def _member_records(self) -> Mapping[str, MemberInfo]:
        """Member records at the stored roster version, without re-reading 10k rows per QR code.

        The daemon has them in its roster snapshot already; a CLI process reads them once per roster
        version. (Listing every member for every QR check cost 226 ms at 10k members: bench.door.)
        """
        stored = self._stored_roster_version()
        current = self.roster.current
        if self._roster_loaded and current.version == stored:
            return current.members
        if self._members_cache is None or self._members_cache[0] != stored:
            with self.sessions() as session:
                records = {
                    m.member_id: member_store.member_info(m) for m in member_store.list_members(session)
                }
            self._members_cache = (stored, records)
        return self._members_cache[1]

    def _qr_state(self) -> dict[str, Any]:
        now = int(time.time())
        members = self._member_records()
        with self.sessions() as session:
            return {
                "public_keys": qr_store.public_keys(session),
                "revoked_kids": qr_store.revoked_kids(session),
                "revoked_nonces": qr_store.revoked_nonces(
                    session, now, skew_s=self.config.qr.max_clock_skew_s
                ),
                "members": members,
            }

    def check_qr_text(self, text: str, *, spend: bool = True) -> QrResult:
        """Check a pass; `spend=False` (the CLI's check) never uses up a single-use pass."""
        return self.qr_checker.check(text, now=time.time(), spend=spend, **self._qr_state())

    def check_qr_image(self, rgb: npt.NDArray[np.uint8], *, spend: bool = True) -> QrResult | None:
        return self.qr_checker.check_image(rgb, now=time.time(), spend=spend, **self._qr_state())

    def revoke_qr(self, text: str, reason: str) -> str:
        try:
            claims = qr_token.parse_token(text)
        except qr_token.TokenError as exc:
            raise RefusedError(f"not a token: {exc}") from None
        with self.write_sessions() as session, session.begin():
            qr_store.revoke_token(
                session,
                nonce_hex=claims.nonce_hex,
                member_id=claims.member_id,
                expires_at=claims.expires_at,
                reason=reason,
            )
        return claims.nonce_hex


def _origin(source: str, origins: Mapping[str, str] | None) -> str:
    return (origins or {}).get(source, "photo")


#: Quality numbers shown in a template listing (the full report stays in the row).
_QUALITY_SHOWN = ("face_px", "sharpness", "brightness", "roll_deg", "yaw")


def _template_json(row: Any) -> dict[str, Any]:
    quality = dict(row.quality or {})
    return {
        "template_id": row.template_id,
        "member_id": row.member_id,
        "model": row.model,
        "created_at": _iso(row.created_at),
        "origin": member_store.template_origin(row),
        "enrolled_by": row.enrolled_by,
        "source": row.source,
        "quality": {k: quality[k] for k in _QUALITY_SHOWN if k in quality},
        "policy": quality.get("policy"),
        "findings": quality.get("findings", []),
        "confirmed": quality.get("confirmed"),
    }


def _model_config_error(path: Path | None, exc: Exception) -> str:
    """A face model problem in words that name the configuration key to fix."""
    where = f"[recognition] onnx_model = {str(path)!r}" if path is not None else "[recognition] encoder"
    return f"{where}: {exc}"


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()
