"""`yizhan` command line: enrolment, identification, members, keys and QR tokens.

Exit codes are part of the contract installers and scripts rely on:
  0  done (for `identify` and `qr check` also when the decision is a refusal: the JSON says which)
  2  refused: bad input, bad configuration, a photo that cannot be enrolled; nothing was stored
  3  the stored data cannot be used (wrong template key, corrupted row, database from a newer version)
  1  anything else (a bug: the message and a traceback go to the log)
`--json` prints exactly one JSON value on standard output; messages and logs go to standard error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.logging_setup import configure_logging
from edge.config import Config, ConfigError, load_config

log = logging.getLogger("yizhan")

EXIT_OK, EXIT_BUG, EXIT_REFUSED, EXIT_DATA = 0, 1, 2, 3
WORKER_KINDS = ("courier", "rider", "sanitation", "driver", "other")
_TOKEN_SHAPE = re.compile(r"YZ[0-9]{1,3}:", re.IGNORECASE)


class CliRefusal(Exception):
    """Ends the command with exit code 2 and the message."""


def _emit(args: argparse.Namespace, value: Any, text: str | Callable[[], str]) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write((text() if callable(text) else text) + "\n")


def _datetime(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {value!r} (e.g. 2026-12-31 or 2026-12-31T18:00+08:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# -- commands ------------------------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace, config: Config) -> int:
    from edge.station import RefusedError, Station

    station = Station(config)
    try:
        outcome = station.enroll(
            member_id=args.member_id,
            name=args.name,
            photos=[Path(p) for p in args.photos],
            groups=args.group or [],
            kind=args.kind,
            phone=args.phone,
            consent_cross_station=args.consent_cross_station,
            confirm_same_person=args.confirm_same_person,
            confirm_different_person=args.confirm_different_person,
            enrolled_by=_cli_user(),
        )
    except RefusedError as exc:
        if args.json:
            _emit(
                args,
                {"ok": False, "error": str(exc), "problems": exc.problems, "findings": exc.findings},
                "",
            )
        sys.stderr.write(f"yizhan enroll: {exc}\n" + "".join(f"  - {p}\n" for p in exc.problems))
        return EXIT_REFUSED
    finally:
        station.close()
    value = {
        "ok": True,
        "member_id": outcome.member_id,
        "created": outcome.created,
        "templates_added": len(outcome.template_ids),
        "template_ids": outcome.template_ids,
        "findings": [f.to_json() for f in outcome.plan.findings],
        "requires_pass": outcome.requires_pass,
        "quality": [p.quality for p in outcome.plan.photos],
        "kept": [p.source for p in outcome.plan.kept()],
        "selection": outcome.plan.selection.to_json() if outcome.plan.selection else None,
    }
    lines = [
        f"enrolled {outcome.member_id} ({'new member' if outcome.created else 'existing member'}): "
        f"{len(outcome.template_ids)} photo(s)"
    ]
    lines += [f"  confirmed: {finding.describe()}" for finding in outcome.plan.findings]
    if outcome.requires_pass:
        lines.append(f"  the door now requires the pass for: {', '.join(outcome.requires_pass)}")
    _emit(args, value, "\n".join(lines))
    return EXIT_OK


def _cli_user() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _template_text(t: dict[str, Any]) -> str:
    quality = " ".join(f"{k}={v}" for k, v in t["quality"].items())
    flags = ", ".join(f"{f['kind']} {f['member_id']} {f['distance']}" for f in t["findings"])
    return (
        f"{t['template_id']}  {t['created_at']}  {t['origin'] or '-':<7} {t['enrolled_by'] or '-':<16} "
        f"{t['source'] or '-'}  {quality}" + (f"  [{flags}]" if flags else "")
    )


def cmd_templates(args: argparse.Namespace, config: Config) -> int:
    """`templates list MEMBER_ID` / `templates remove TEMPLATE_ID`: one template at a time."""
    from edge.station import Station

    station = Station(config)
    try:
        if args.templates_cmd == "list":
            if station.get_member(args.member_id) is None:
                raise CliRefusal(f"no member {args.member_id!r}")
            rows = station.list_templates(args.member_id)
            _emit(args, rows, lambda: "\n".join(_template_text(t) for t in rows) or "(no templates)")
        else:
            removed = station.remove_template(args.template_id, removed_by=_cli_user())
            if removed is None:
                raise CliRefusal(f"no template {args.template_id!r}")
            _emit(
                args,
                removed,
                f"removed template {removed['template_id']} of {removed['member_id']} "
                f"({removed['templates_left']} left)",
            )
    finally:
        station.close()
    return EXIT_OK


def cmd_identify(args: argparse.Namespace, config: Config) -> int:
    from edge.station import RefusedError, Station, photo_pixel_limit, read_photo

    try:
        rgb = read_photo(Path(args.photo), max_pixels=photo_pixel_limit(config))
    except RefusedError as exc:
        raise CliRefusal(str(exc)) from None
    station = Station(config)
    try:
        result = station.identify(rgb)
        name = None
        if result.member_id:
            member = station.get_member(result.member_id)
            name = member["name"] if member else None
    finally:
        station.close()
    value = result.to_json()
    value["name"] = name
    distance = "-" if result.distance is None else f"{result.distance:.3f}"
    margin = "-" if result.margin is None else f"{result.margin:.3f}"
    _emit(
        args,
        value,
        f"{result.decision.value}: member={result.member_id or '-'} name={name or '-'} "
        f"distance={distance} margin={margin} reason={result.reason or '-'} "
        f"total={result.timings_ms.get('total', 0):.0f} ms",
    )
    return EXIT_OK


def cmd_members(args: argparse.Namespace, config: Config) -> int:
    from edge.station import Station

    station = Station(config)
    try:
        if args.members_cmd == "add":
            member = station.add_member(
                member_id=args.member_id,
                name=args.name,
                phone=args.phone,
                groups=tuple(args.group or ()),
                kind=args.kind,
                valid_from=args.valid_from,
                valid_until=args.valid_until,
                consent_face=False,
                consent_cross_station=args.consent_cross_station,
            )
            _emit(
                args,
                member,
                f"added member {member['member_id']} ({member['name']}), QR only until a face is enrolled",
            )
        elif args.members_cmd == "list":
            rows = station.list_members()
            _emit(args, rows, lambda: _members_text(rows))
        elif args.members_cmd == "show":
            found = station.get_member(args.member_id)
            if found is None:
                raise CliRefusal(f"no member {args.member_id!r}")
            _emit(args, found, lambda: "\n".join(f"{k}: {v}" for k, v in found.items()))
        elif args.members_cmd == "remove":
            if not station.remove_member(args.member_id):
                raise CliRefusal(f"no member {args.member_id!r}")
            _emit(
                args, {"removed": args.member_id}, f"removed member {args.member_id} and their face templates"
            )
        elif args.members_cmd == "require-pass":
            if station.get_member(args.member_id) is None:
                raise CliRefusal(f"no member {args.member_id!r}")
            member = station.update_member(args.member_id, requires_pass=not args.off)
            state = "no longer requires" if args.off else "now requires"
            _emit(args, member, f"member {args.member_id} {state} the pass at the door")
        elif args.members_cmd == "prune-templates":
            removed = station.prune_other_model_templates()
            total = sum(removed.values())
            _emit(
                args,
                {"face_model": station.face_model_name, "removed": removed},
                lambda: (
                    f"removed {total} template(s) of other face models "
                    + (", ".join(f"{n} {model}" for model, n in sorted(removed.items())) or "(none)")
                    + f"; kept those of {station.face_model_name}"
                ),
            )
        elif args.members_cmd in ("suspend", "activate"):
            status = "suspended" if args.members_cmd == "suspend" else "active"
            if station.get_member(args.member_id) is None:
                raise CliRefusal(f"no member {args.member_id!r}")
            member = station.update_member(args.member_id, status=status)
            _emit(args, member, f"member {args.member_id} is now {status}")
    finally:
        station.close()
    return EXIT_OK


def _members_text(rows: list[dict[str, Any]]) -> str:
    """One line per member; members whose templates are all another face model's are marked, with
    a closing line saying what to do (after an encoder switch they have no face at the door)."""
    if not rows:
        return "(no members)"
    lines = []
    for m in rows:
        flag = "requires-pass " if m.get("requires_pass") else ""
        line = f"{m['member_id']:<20} {m['status']:<9} templates={m['templates']:<2} {flag}{m['name']}"
        if m.get("needs_reenrolment"):
            other = ", ".join(f"{n} {model}" for model, n in sorted(m["templates_by_model"].items()))
            line += f"  [no template for {m['face_model']}: re-enrol (has {other})]"
        lines.append(line)
    stale = sum(1 for m in rows if m.get("needs_reenrolment"))
    if stale:
        lines.append(
            f"{stale} member(s) must be enrolled again for the active face model {rows[0]['face_model']} "
            "(until then they enter with their pass)"
        )
    return "\n".join(lines)


def cmd_keys(args: argparse.Namespace, config: Config) -> int:
    from edge.station import Station
    from models import qr_store

    station = Station(config)
    try:
        if args.keys_cmd == "init":
            kid = station.init_keys(force=args.force)
            _emit(
                args,
                {"kid": kid, "private_key": str(station.signing_key_path)},
                f"signing key {kid} written to {station.signing_key_path} (mode 0600); "
                "its public key is trusted here",
            )
        elif args.keys_cmd == "add":
            try:
                pem = Path(args.pem).read_bytes()
            except OSError as exc:
                raise CliRefusal(f"{args.pem}: cannot read ({exc.strerror or exc})") from None
            kid = station.add_public_key(pem, label=args.label)
            _emit(args, {"kid": kid}, f"trusted public key {kid}")
        elif args.keys_cmd == "list":
            with station.sessions() as session:
                keys = sorted(qr_store.public_keys(session))
                revoked = sorted(qr_store.revoked_kids(session))
            _emit(
                args,
                {"trusted": keys, "revoked": revoked},
                "\n".join([f"{k} trusted" for k in keys] + [f"{k} revoked" for k in revoked]) or "(no keys)",
            )
        elif args.keys_cmd == "revoke":
            with station.sessions() as session, session.begin():
                qr_store.revoke_key(session, args.kid)
            _emit(args, {"revoked": args.kid}, f"key {args.kid} revoked: tokens it signed are refused")
    finally:
        station.close()
    return EXIT_OK


def _names_a_file(value: str) -> bool:
    """Whether `yizhan qr check` was given a file (a photo of a code) rather than a token's text.

    Token-shaped text is never looked up on disk, and any text the OS refuses as a path (longer than
    NAME_MAX/PATH_MAX, a NUL byte) is text: a 300-character token must not end in "File name too
    long".
    """
    if _TOKEN_SHAPE.match(value.strip()):
        return False
    return os.path.isfile(value)  # False (not an exception) for ENAMETOOLONG and NUL bytes


def cmd_qr(args: argparse.Namespace, config: Config) -> int:
    from edge.station import RefusedError, Station, photo_pixel_limit, read_photo

    station = Station(config)
    try:
        if args.qr_cmd == "issue":
            token = station.issue_qr(
                member_id=args.member_id,
                ttl_s=args.ttl,
                station=args.station,
                group=args.group,
                single_use=args.single_use,
            )
            if args.png:
                from edge.pass_card import PassLabel, write_pass_card
                from recognizer.qr_token import parse_token

                claims = parse_token(token)
                member = station.get_member(args.member_id)
                label = PassLabel(
                    member_id=args.member_id,
                    name=member["name"] if member else None,
                    expires_at=claims.expires_at,
                    timezone=config.schedule.timezone,
                    single_use=claims.single_use,
                    station=claims.station_scope,
                )
                write_pass_card(token, label, Path(args.png))
            sys.stdout.write(token + "\n")
        elif args.qr_cmd == "check":
            # A check, not a door: a single-use pass is looked up, never used up (it must still
            # open the door once after an installer checked it before printing it).
            if _names_a_file(args.token_or_image):
                try:
                    rgb = read_photo(Path(args.token_or_image), max_pixels=photo_pixel_limit(config))
                except RefusedError as exc:
                    raise CliRefusal(str(exc)) from None
                result = station.check_qr_image(rgb, spend=False)
                if result is None:
                    from recognizer.results import Decision, QrResult

                    result = QrResult(Decision.QR_REFUSED, reason="no_qr_code")
            else:
                result = station.check_qr_text(args.token_or_image.strip(), spend=False)
            note = (
                "dry run: this single-use pass was not used up"
                if result.single_use
                else "dry run: nothing recorded"
            )
            _emit(
                args,
                {**result.to_json(), "dry_run": True},
                f"{result.decision.value}: member={result.member_id or '-'} reason={result.reason or '-'} "
                f"({note})",
            )
        elif args.qr_cmd == "revoke":
            nonce = station.revoke_qr(args.token.strip(), args.reason)
            _emit(args, {"revoked_nonce": nonce}, f"token {nonce} revoked")
    except RefusedError as exc:
        raise CliRefusal(str(exc)) from None
    finally:
        station.close()
    return EXIT_OK


def _event_text(e: dict[str, Any]) -> str:
    latency = "" if e["latency_ms"] is None else f"{e['latency_ms']:.0f} ms"
    return (
        f"{e['ts']}  {e['kind']:<15} {e['method'] or '-':<16} {e['member_id'] or '-':<16} "
        f"{e['reason'] or '-':<18} {latency}"
    )


def cmd_events(args: argparse.Namespace, config: Config) -> int:
    """`events list` (newest first) and `events stats`, all in the station's time zone.

    One zone everywhere ([schedule] timezone): `--since` without an offset is read in it, times are
    printed in it with their UTC offset, and `stats` groups by its days.
    """
    import time
    from zoneinfo import ZoneInfo

    from edge.event_report import local_time, parse_since, stats_by_day, zone_label
    from edge.station import Station
    from models import events as event_store

    tz = ZoneInfo(config.schedule.timezone)
    try:
        since = parse_since(args.since, now=time.time(), tz=tz) if args.since else None
    except ValueError as exc:
        raise CliRefusal(str(exc)) from None
    if not 1 <= args.limit <= event_store.LIST_LIMIT_MAX:
        raise CliRefusal(f"--limit must be from 1 to {event_store.LIST_LIMIT_MAX}, got {args.limit}")
    station = Station(config)
    try:
        with station.sessions() as session:
            rows = [
                {**event_store.event_to_json(e), "ts": local_time(e.ts_wall, tz)}
                for e in event_store.list_events(
                    session,
                    since=since,
                    kind=getattr(args, "kind", None),
                    member_id=getattr(args, "member", None),
                    limit=args.limit,
                    newest_first=True,
                )
            ]
    finally:
        station.close()
    header = f"(times in {zone_label(tz)})"
    if args.events_cmd == "list":
        lines = [header, *(_event_text(e) for e in rows)] if rows else ["(no events)"]
        _emit(args, rows, "\n".join(lines))
    else:
        days = stats_by_day(rows, tz)
        _emit(
            args,
            days,
            lambda: "\n".join(
                [header]
                + [f"{'day':<11} {'entries':>7} {'members':>7} {'refusals':>8} {'exits':>5} {'alarms':>6}"]
                + [
                    f"{d['day']:<11} {d['entries']:>7} {d['distinct_members']:>7} {d['refusals']:>8} "
                    f"{d['exits']:>5} {d['alarms']:>6}"
                    for d in days
                ]
            ),
        )
    return EXIT_OK


def _say_encoded(name: str) -> None:
    sys.stderr.write(f"  encoded {name}\n")


def cmd_calibrate(args: argparse.Namespace, config: Config) -> int:
    """`calibrate --faces DIR`: choose and measure the operating point on the station's own faces."""
    from edge.calibrate import (
        CalibrationError,
        calibrate,
        config_snippet,
        operating_point_json,
        summary_lines,
        write_operating_point,
    )
    from edge.faceset import FaceSetError, encode
    from edge.station import Station
    from recognizer.calibration import PRESET_SETTINGS

    faces = Path(args.faces).resolve()
    station = Station(config)
    try:
        try:
            samples, stats = encode(
                faces,
                station.photo_pipeline,
                station.pipeline,
                frames=PRESET_SETTINGS[args.preset].min_frames,
                progress=_say_encoded if args.verbose else None,
            )
            result = calibrate(samples, model=station.face_model_name, preset=args.preset)
        except (FaceSetError, CalibrationError) as exc:
            raise CliRefusal(str(exc)) from None
        out = Path(args.out).resolve() if args.out else (station.data_dir / "operating_point.json").resolve()
    finally:
        station.close()
    document = operating_point_json(result, faces=faces, photos=stats.photos)
    document["unusable"] = stats.missing
    write_operating_point(out, document)
    snippet = config_snippet(out)
    _emit(
        args,
        {**document, "path": str(out), "config": snippet},
        lambda: "\n".join(
            summary_lines(document)
            + [f"  not usable: {m}" for m in stats.missing]
            + [f"written to {out}; to use it, add to the station's config:", snippet.rstrip()]
        ),
    )
    return EXIT_OK


def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    """`sync flush|pull|trust`: deliver the outbox, bring the roster up to date, pin centre keys."""
    from edge.sync_port import sync_tool

    return sync_tool(args, config)


def cmd_installer(args: argparse.Namespace, config: Config) -> int:
    """`installer add|remove|list`: accounts for the local page (an added secret is shown once)."""
    from edge.api.installers import installer_command

    return installer_command(args, config)


_STATUS_WORD = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from edge.doctor import run_checks

    checks = run_checks(config, camera=not args.no_camera)
    _emit(
        args,
        [c.to_json() for c in checks],
        lambda: "\n".join(f"{_STATUS_WORD[c.status]}  {c.name:<13} {c.detail}" for c in checks),
    )
    return EXIT_BUG if any(c.status == "fail" for c in checks) else EXIT_OK


def cmd_door(args: argparse.Namespace, config: Config) -> int:
    """`door safe`: drive the relay outputs to their de-energised level and release them.

    systemd runs it before start and after every stop (ExecStopPost), crashes included, so a relay
    can never stay energised because the daemon died between two instructions.
    """
    from door.pins import make_pin_factory
    from door.relay import DoorRelay

    factory = make_pin_factory(config.door.gpio.pin_factory)
    try:
        relays = [DoorRelay(config.door.relay, pin_factory=factory, name="door relay")]
        if config.door.aux_relay.enabled:
            relays.append(DoorRelay(config.door.aux_relay, pin_factory=factory, name="aux relay"))
        for relay in relays:
            relay.close()
    finally:
        factory.close()
    _emit(args, {"safe": True}, "relay outputs de-energised")
    return EXIT_OK


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    _emit(args, json.loads(config.model_dump_json()), config.model_dump_json(indent=2))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from edge.demo import run_demo

    # The demo's own lines are the output; routine logs would drown them.
    configure_logging("WARNING", args.log_format or "text")
    return run_demo(config, data_dir=Path(args.data_dir) if args.data_dir else None)


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """The station daemon. SIGTERM/SIGINT stop it cleanly: the relay is de-energised first."""
    import signal

    from door.pins import DoorHardwareError
    from edge.app import RunOptions, StationDaemon
    from edge.run_lock import DataDirBusy

    daemon = StationDaemon(
        config,
        RunOptions(
            exit_at_end=args.exit_at_end,
            realtime=False if args.fast else None,
            camera_source=args.source,
        ),
    )

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping on signal", extra={"fields": {"signal": signum}})
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return daemon.run()
    except (DataDirBusy, DoorHardwareError) as exc:
        # Refused, not a bug: a second daemon on this data dir, or no GPIO driver (the same words
        # `yizhan doctor` prints). Exit 2, which the systemd unit does not restart.
        raise CliRefusal(str(exc)) from None


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yizhan", description="Door controller for union rest stations.")
    parser.add_argument(
        "--config", type=Path, help="TOML config (default: $YIZHAN_CONFIG, ./yizhan.toml, built-in)"
    )
    parser.add_argument("--log-format", choices=["json", "text"], help="override [logging] format")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str,
        handler: Callable[[argparse.Namespace, Config], int],
        help_text: str,
        json_flag: bool = True,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON value")
        return p

    enroll = add("enroll", cmd_enroll, "enrol a member's face from one or more photos")
    enroll.add_argument("--member-id", required=True)
    enroll.add_argument("--name", required=True)
    enroll.add_argument("--group", action="append", help="member group (repeatable)")
    enroll.add_argument("--kind", choices=WORKER_KINDS)
    enroll.add_argument("--phone")
    enroll.add_argument(
        "--consent-cross-station",
        action="store_true",
        help="the member agreed in writing that their face template may go to other stations",
    )
    enroll.add_argument(
        "--confirm-different-person",
        "--force",
        dest="confirm_different_person",
        action="store_true",
        help="checked: the face near another member is a different person (lookalikes then both "
        "need the pass at the door); never overrides 'same person'",
    )
    enroll.add_argument(
        "--confirm-same-person",
        action="store_true",
        help="checked: the photos added to this existing member show them",
    )
    enroll.add_argument("photos", nargs="+", metavar="PHOTO")

    identify = add("identify", cmd_identify, "who does the face in this photo belong to?")
    identify.add_argument("photo", metavar="PHOTO")

    members = sub.add_parser("members", help="manage members")
    members.set_defaults(handler=cmd_members)
    msub = members.add_subparsers(dest="members_cmd", required=True)
    madd = msub.add_parser("add", help="add a member without a face (QR only)")
    madd.add_argument("--member-id", required=True)
    madd.add_argument("--name", required=True)
    madd.add_argument("--phone")
    madd.add_argument("--group", action="append")
    madd.add_argument("--kind", choices=WORKER_KINDS)
    madd.add_argument("--valid-from", type=_datetime)
    madd.add_argument("--valid-until", type=_datetime)
    madd.add_argument("--consent-cross-station", action="store_true")
    msub.add_parser(
        "prune-templates",
        help="delete every face template not made by the active face model (after re-enrolling "
        "for a new encoder: templates no model here uses are biometric data kept for nothing)",
    )
    for name, help_text in (
        ("list", "list members"),
        ("show", "show one member"),
        ("remove", "remove a member and their face templates"),
        ("suspend", "refuse a member until re-activated"),
        ("activate", "re-activate a member"),
        ("require-pass", "never let this member in by face alone (the pass names them, the face confirms)"),
    ):
        mp = msub.add_parser(name, help=help_text)
        if name != "list":
            mp.add_argument("member_id", metavar="ID")
        if name == "require-pass":
            mp.add_argument("--off", action="store_true", help="let the face alone admit them again")
    for mp in msub.choices.values():
        mp.add_argument("--json", action="store_true", help="print one JSON value")

    templates = sub.add_parser("templates", help="a member's face templates, one at a time")
    templates.set_defaults(handler=cmd_templates)
    tsub = templates.add_subparsers(dest="templates_cmd", required=True)
    tlist = tsub.add_parser("list", help="when, how, quality and by whom each template was enrolled")
    tlist.add_argument("member_id", metavar="MEMBER_ID")
    tremove = tsub.add_parser("remove", help="delete one template (e.g. a wrong photo)")
    tremove.add_argument("template_id", metavar="TEMPLATE_ID")
    for tp in tsub.choices.values():
        tp.add_argument("--json", action="store_true", help="print one JSON value")

    keys = sub.add_parser("keys", help="QR signing keys")
    keys.set_defaults(handler=cmd_keys)
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    kinit = ksub.add_parser("init", help="create a signing keypair (standalone station or the centre)")
    kinit.add_argument("--force", action="store_true", help="replace an existing signing key")
    kadd = ksub.add_parser("add", help="trust a public key (PEM) of the centre")
    kadd.add_argument("pem", metavar="PEM_FILE")
    kadd.add_argument("--label", default="")
    ksub.add_parser("list", help="list trusted and revoked keys")
    krev = ksub.add_parser("revoke", help="stop trusting a key")
    krev.add_argument("kid", metavar="KID")
    for kp in ksub.choices.values():
        kp.add_argument("--json", action="store_true", help="print one JSON value")

    qr = sub.add_parser("qr", help="QR access tokens")
    qr.set_defaults(handler=cmd_qr)
    qsub = qr.add_subparsers(dest="qr_cmd", required=True)
    issue = qsub.add_parser("issue", help="issue a signed token; prints it as the only line of output")
    issue.add_argument("--member-id", required=True)
    issue.add_argument("--ttl", type=int, help="validity in seconds (default [qr] default_ttl_s)")
    issue.add_argument("--station", help="valid only at this station id")
    issue.add_argument("--group", help="valid only for members of this group")
    issue.add_argument("--single-use", action="store_true", help="refused after its first use")
    issue.add_argument(
        "--png", help="also write a printable PNG: the QR code with the member's name and expiry"
    )
    check = qsub.add_parser(
        "check",
        help="check a token (text) or a photo of a QR code; a dry run: a single-use pass is not used up",
    )
    check.add_argument("token_or_image", metavar="TOKEN_OR_IMAGE")
    check.add_argument("--json", action="store_true", help="print one JSON value")
    revoke = qsub.add_parser("revoke", help="revoke one token (lost phone or card)")
    revoke.add_argument("token", metavar="TOKEN")
    revoke.add_argument("--reason", default="revoked")
    revoke.add_argument("--json", action="store_true", help="print one JSON value")

    events = sub.add_parser("events", help="the local event log")
    events.set_defaults(handler=cmd_events)
    esub = events.add_subparsers(dest="events_cmd", required=True)
    elist = esub.add_parser("list", help="events, newest first, in the station's time zone")
    elist.add_argument("--kind", help="only this kind (entry, refused, emergency, ...)")
    elist.add_argument("--member", help="only this member id")
    estats = esub.add_parser("stats", help="visits, distinct members and refusals per day")
    estats.add_argument("--by", choices=["day"], default="day")
    for ep in (elist, estats):
        ep.add_argument("--since", help="2026-11-24, 2026-11-24T08:00[+08:00], or 90m / 12h / 7d")
        ep.add_argument(
            "--limit", type=int, default=10000, help="the newest this many events (default 10000)"
        )
        ep.add_argument("--json", action="store_true", help="print one JSON value")

    sync = sub.add_parser("sync", help="MQTT sync with the centre")
    sync.set_defaults(handler=cmd_sync)
    ssub = sync.add_subparsers(dest="sync_cmd", required=True)
    flush = ssub.add_parser("flush", help="publish everything pending; exit 0 once the outbox is empty")
    flush.add_argument(
        "--timeout", type=float, default=60.0, help="give up after this many seconds (default 60)"
    )
    pull = ssub.add_parser("pull", help="bring the roster up to date with the centre; exit 0 once current")
    pull.add_argument(
        "--timeout", type=float, default=60.0, help="give up after this many seconds (default 60)"
    )
    trust = ssub.add_parser("trust", help="pin the centre's public signing key(s) (docs/mqtt.md, Signatures)")
    trust.add_argument(
        "key", nargs="?", metavar="KEY", help="a key file (PEM / base64 lines) or the base64 key"
    )
    trust.add_argument("--label", default="", help="a label for the key")
    trust.add_argument("--remove", metavar="KID", help="stop trusting this key id")
    trust.add_argument("--list", action="store_true", help="list the keys and whether they are trusted")
    trust.add_argument("--json", action="store_true", help="with --list: print JSON")
    calibrate = add(
        "calibrate",
        cmd_calibrate,
        "measure false accepts and rejects on labelled faces (people/<id>/*, unknown/*) and write "
        "the operating point this station should use",
    )
    calibrate.add_argument(
        "--faces", required=True, metavar="DIR", help="people/<id>/<photo> and unknown/<photo>"
    )
    calibrate.add_argument(
        "--preset",
        choices=["strict", "balanced", "convenient"],
        default="balanced",
        help="which preset's procedure settings to calibrate (default balanced)",
    )
    calibrate.add_argument("--out", help="operating point file (default <data_dir>/operating_point.json)")
    calibrate.add_argument("--verbose", action="store_true", help="name each photo as it is encoded")
    installer = sub.add_parser("installer", help="installer accounts for the local page")
    installer.set_defaults(handler=cmd_installer)
    isub = installer.add_subparsers(dest="installer_cmd", required=True)
    iadd = isub.add_parser("add", help="create an installer account (the secret is printed once)")
    iadd.add_argument("username", metavar="USERNAME")
    iadd.add_argument("--reset", action="store_true", help="give an existing installer a new secret")
    isub.add_parser("remove", help="delete an installer account").add_argument("username", metavar="USERNAME")
    isub.add_parser("list", help="list installer accounts").add_argument("--json", action="store_true")

    doctor = add("doctor", cmd_doctor, "check camera, GPIO, clock, disk, database and keys")
    doctor.add_argument(
        "--no-camera", action="store_true", help="skip opening the camera (the daemon holds it)"
    )
    door = sub.add_parser("door", help="door hardware")
    door.set_defaults(handler=cmd_door)
    dsub = door.add_subparsers(dest="door_cmd", required=True)
    dsafe = dsub.add_parser("safe", help="de-energise the relay outputs (systemd ExecStartPre/ExecStopPost)")
    dsafe.add_argument("--json", action="store_true", help="print one JSON value")

    add("config", cmd_config, "print the effective configuration")
    run = add("run", cmd_run, "run the station daemon (camera, door, events)", json_flag=False)
    run.add_argument("--exit-at-end", action="store_true", help="stop when a video file source ends")
    run.add_argument("--fast", action="store_true", help="play a video file as fast as possible")
    run.add_argument("--source", help="override [camera] source (device index, URL or video file)")
    demo = add(
        "demo", cmd_demo, "enrol the fixture faces and show decisions (no camera needed)", json_flag=False
    )
    demo.add_argument(
        "--data-dir", help="where the demo station keeps its data (default: a fresh temporary folder)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, source = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"yizhan: {exc}\n")
        return EXIT_REFUSED
    configure_logging(config.logging.level, args.log_format or config.logging.format)
    log.debug("configuration loaded", extra={"fields": {"source": source}})
    try:
        return int(args.handler(args, config))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _exit_code(args, exc)


class _NeverRaised(Exception):
    pass


def _loaded(module: str, name: str) -> type[BaseException]:
    """A class from a module only if the command imported it: an exception of that class cannot
    exist otherwise. Keeps `yizhan door safe` (systemd's ExecStopPost, on the relay's critical path
    after a crash) from importing SQLAlchemy, NumPy and OpenCV just to classify errors."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else _NeverRaised


def _exit_code(args: argparse.Namespace, exc: Exception) -> int:
    if isinstance(exc, _loaded("edge.calibrate", "OperatingPointError")):  # a bad operating point file
        sys.stderr.write(f"yizhan {args.command}: {exc}\n")
        return EXIT_REFUSED
    if isinstance(exc, CliRefusal | _loaded("edge.station", "RefusedError")):
        problems = getattr(exc, "problems", [])
        sys.stderr.write(f"yizhan {args.command}: {exc}\n" + "".join(f"  - {p}\n" for p in problems))
        return EXIT_REFUSED
    if isinstance(exc, ConfigError):  # found when a part is built (e.g. the face model file)
        sys.stderr.write(f"yizhan {args.command}: invalid configuration: {exc}\n")
        return EXIT_REFUSED
    if isinstance(exc, _loaded("models.database", "StoreError")):
        if isinstance(exc, ValueError | LookupError):  # bad input (validation, duplicate, not found)
            sys.stderr.write(f"yizhan {args.command}: {exc}\n")
            return EXIT_REFUSED
        sys.stderr.write(f"yizhan {args.command}: stored data cannot be used: {exc}\n")
        return EXIT_DATA
    log.exception("unexpected error", extra={"fields": {"command": args.command}}, exc_info=exc)
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
