"""`yizhan-central` command line: set up the centre, register stations, look at what is stored, serve.

Exit codes, like the station's:
  0  done
  2  refused: bad input or configuration (nothing was stored)
  3  the stored data cannot be used (database from a newer centre, wrong data key, damaged rows)
  1  anything else (a bug: the message and a traceback go to the log)
`--json` prints exactly one JSON value on standard output; messages and logs go to standard error.
`init` prints the new admin's password as the last line of standard output (scripts take it from
there; it is shown once and stored only as an argon2id hash).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from central.config import CentralConfig, ConfigError, load_config
from common.errors import StoreError
from common.logging_setup import configure_logging
from common.passwords import CredentialError

log = logging.getLogger("yizhan.central")

EXIT_OK, EXIT_BUG, EXIT_REFUSED, EXIT_DATA = 0, 1, 2, 3
CLI_ACTOR = "cli"


class CliRefusal(Exception):
    """Ends the command with exit code 2 and the message."""


def _emit(args: argparse.Namespace, value: Any, text: str | Callable[[], str]) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write((text() if callable(text) else text) + "\n")


@contextmanager
def _database(config: CentralConfig) -> Iterator[Session]:
    """A migrated database and one transaction, committed when the command succeeds."""
    from central.store.database import open_engine, session_factory, upgrade

    engine = open_engine(config.database_url, config.database)
    try:
        upgrade(engine)
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


# -- commands ------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, config: CentralConfig) -> int:
    from central.data_key import DataKey
    from central.store import audit, signing_keys
    from central.store import staff as staff_store
    from common.passwords import Passwords

    data_key = DataKey.load(config)  # created on first use, before anything is encrypted with it
    now = dt.datetime.now(dt.UTC)
    with _database(config) as db:
        account, secret = staff_store.create_staff(db, Passwords(), username=args.admin, role="admin")
        audit.record(
            db, actor=CLI_ACTOR, action="staff_created", target_type="staff", target_id=account.username
        )
        keys = {}
        for purpose in ("qr", "messages"):  # a pass key and a key for signed messages, once
            key = signing_keys.active_key(db, purpose=purpose)
            if key is None:
                key, _ = signing_keys.rotate_key(
                    db, data_key, purpose=purpose, now=now, overlap=_overlap(config, purpose)
                )
                audit.record(
                    db,
                    actor=CLI_ACTOR,
                    action="signing_key_created",
                    target_type="signing_key",
                    target_id=key.kid,
                    details={"purpose": purpose},
                )
            keys[purpose] = (key.kid, signing_keys.public_key_b64(key))
    sys.stdout.write(
        f"database ready: {config.database_url.render_as_string(hide_password=True)}\n"
        f"data key: {data_key.fingerprint} (back it up apart from the database)\n"
        f"QR pass signing key: {keys['qr'][0]}\n"
        f"message signing key: {keys['messages'][0]} {keys['messages'][1]} (stations pin it at install)\n"
        f"admin account {account.username} created; its password, shown only now:\n"
        f"{secret}\n"
    )
    return EXIT_OK


def _overlap(config: CentralConfig, purpose: str) -> dt.timedelta:
    """How long a replaced key stays trusted: a QR key until its longest pass expires; a message
    key until the roster has told every station about its successor (a day, then revoked)."""
    return dt.timedelta(seconds=config.qr.max_pass_ttl_s if purpose == "qr" else 86_400)


def _station_json(station: Any, now: dt.datetime) -> dict[str, Any]:
    from central.web.schemas import StationOut

    return StationOut.of(station, now).model_dump(mode="json")


def _schedule_arg(value: str | None) -> Any:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliRefusal(f"--hours is not JSON ({exc}); see docs/CENTRAL.md for the shape") from None


def cmd_stations(args: argparse.Namespace, config: CentralConfig) -> int:
    from central.store import audit
    from central.store import stations as station_store

    if args.stations_cmd == "poster":
        return cmd_poster(args, config)
    now = dt.datetime.now(dt.UTC)
    with _database(config) as db:
        if args.stations_cmd == "add":
            station = station_store.add_station(
                db,
                station_id=args.station_id,
                name=args.name,
                district_id=args.district,
                address=args.address,
                latitude=args.lat,
                longitude=args.lon,
                schedule=_schedule_arg(args.hours),
                services=args.service or [],
                contact_name=args.contact_name,
                contact_phone=args.contact_phone,
                allowed_groups=args.group or [],
            )
            audit.record(
                db,
                actor=CLI_ACTOR,
                action="station_added",
                target_type="station",
                target_id=station.station_id,
                district_id=station.district_id,
            )
            value = _station_json(station, now)
            _emit(
                args, value, f"added station {station.station_id} ({station.name}) in {station.district_id}"
            )
            return EXIT_OK
        rows = [_station_json(s, now) for s in station_store.list_stations(db)]
    _emit(
        args,
        rows,
        lambda: (
            "\n".join(
                "\t".join(
                    [
                        r["station_id"],
                        r["name"],
                        r["district_id"],
                        "open" if r["open_now"] else "closed",
                        r["state"],
                    ]
                )
                for r in rows
            )
            or "no stations"
        ),
    )
    return EXIT_OK


def cmd_poster(args: argparse.Namespace, config: CentralConfig) -> int:
    """The station's A4 door poster as PNG and/or PDF (issue 11): its QR code opens the station's
    phone page at the centre's public address."""
    from central.phone.poster import (
        PosterContent,
        PosterError,
        find_font,
        hours_text,
        poster_bytes,
        station_url,
    )
    from central.store import stations as station_store

    if args.png is None and args.pdf is None:
        raise CliRefusal("say where to write the poster: --png FILE and/or --pdf FILE")
    base = args.base_url or config.web.public_url
    if base is None:
        host = "127.0.0.1" if config.web.host in ("0.0.0.0", "::") else config.web.host
        base = f"http://{host}:{config.web.port}"
        sys.stderr.write(
            f"yizhan-central stations poster: [web] public_url is not set; the QR code points at {base}, "
            "which phones outside this machine cannot reach (set public_url or pass --base-url)\n"
        )
    with _database(config) as db:
        station = station_store.get_station(db, station_id=args.station_id)
        if station is None:
            raise CliRefusal(f"no station {args.station_id!r}")
        content = PosterContent(
            station_id=station.station_id,
            name=station.name,
            url=station_url(base, station.station_id),
            address=station.address,
            hours=hours_text(station.schedule),
            contact=station.contact_phone,
        )
    try:
        font = find_font(config.phone.poster_font_file)
        written = []
        for kind, path in (("png", args.png), ("pdf", args.pdf)):
            if path is not None:
                path.write_bytes(poster_bytes(content, font, kind))
                written.append(str(path))
    except PosterError as exc:
        raise CliRefusal(str(exc)) from None
    except OSError as exc:
        raise CliRefusal(f"cannot write the poster: {exc.strerror or exc}") from None
    _emit(
        args,
        {"station_id": content.station_id, "url": content.url, "files": written},
        f"poster for {content.station_id} ({content.url}) written to {', '.join(written)}",
    )
    return EXIT_OK


def cmd_members(args: argparse.Namespace, config: CentralConfig) -> int:
    from central import roster
    from central.store import audit
    from central.store import members as member_store

    with _database(config) as db:
        if args.members_cmd == "add":
            member = member_store.add_member(
                db,
                member_id=args.member_id,
                name=args.name,
                phone=args.phone,
                kind=args.kind,
                employer=args.employer,
                groups=args.group or [],
                valid_until=args.valid_until,
                source="cli",
            )
            audit.record(
                db, actor=CLI_ACTOR, action="member_added", target_type="member", target_id=member.member_id
            )
            roster.member_changed(db, member.member_id)  # every station it may enter hears of it
            _emit(
                args, {"member_id": member.member_id, "name": member.name}, f"added member {member.member_id}"
            )
            return EXIT_OK
        rows = [
            {
                "member_id": r.member.member_id,
                "name": r.member.name,
                "templates": r.templates,
                "status": r.member.status,
                "kind": r.member.kind,
                "groups": list(r.member.groups),
                "consent_face": r.member.consent_face,
                "consent_cross_station": r.member.consent_cross_station,
                "home_station_id": r.member.home_station_id,
            }
            for r in member_store.list_members(db, search=args.search, limit=args.limit)
        ]
    _emit(
        args,
        rows,
        lambda: (
            "\n".join(
                f"{r['member_id']}\t{r['name']}\t{r['status']}\ttemplates={r['templates']}" for r in rows
            )
            or "no members"
        ),
    )
    return EXIT_OK


def cmd_events(args: argparse.Namespace, config: CentralConfig) -> int:
    from central.store import events as event_store

    with _database(config) as db:
        rows = [
            {
                "id": e.id,
                "station_id": e.station_id,
                "ts": e.ts.isoformat(),
                "kind": e.kind,
                "method": e.method,
                "member_id": e.member_id,
                "reason": e.reason,
                "latency_ms": e.latency_ms,
                "snapshot": e.snapshot,
                "received_at": e.received_at.isoformat(),
            }
            for e in event_store.list_events(
                db, station_ids=[args.station] if args.station else None, since=args.since, limit=args.limit
            )
        ]
    _emit(
        args,
        rows,
        lambda: (
            "\n".join(
                f"{r['ts']}\t{r['station_id']}\t{r['kind']}\t{r['method'] or '-'}\t{r['member_id'] or '-'}"
                for r in rows
            )
            or "no events"
        ),
    )
    return EXIT_OK


def cmd_keys(args: argparse.Namespace, config: CentralConfig) -> int:
    from central import roster
    from central.data_key import DataKey
    from central.store import audit, signing_keys

    now = dt.datetime.now(dt.UTC)
    data_key = DataKey.load(config)
    with _database(config) as db:
        if args.keys_cmd == "rotate":
            key, previous = signing_keys.rotate_key(
                db,
                data_key,
                purpose=args.purpose,
                now=now,
                overlap=_overlap(config, args.purpose),
                label=args.label,
            )
            if args.purpose == "qr":
                roster.keys_changed(db, now=now)  # add_qr_key to every station (the old one stays)
            audit.record(
                db,
                actor=CLI_ACTOR,
                action="signing_key_rotated",
                target_type="signing_key",
                target_id=key.kid,
                details={"purpose": args.purpose, "previous": previous and previous.kid},
            )
            until = previous.trusted_until if previous is not None else None
            value = {
                "kid": key.kid,
                "purpose": key.purpose,
                "public_key": signing_keys.public_key_b64(key),
                "previous": previous.kid if previous is not None else None,
                "previous_trusted_until": until.isoformat() if until else None,
            }
            text = f"new {args.purpose} signing key {key.kid}"
            if previous is not None and until is not None:
                text += f"; {previous.kid} stays trusted until {until:%Y-%m-%d %H:%M} UTC"
            _emit(args, value, text)
            return EXIT_OK
        rows = [
            {
                "kid": k.kid,
                "purpose": k.purpose,
                "state": k.state,
                "label": k.label,
                "public_key": signing_keys.public_key_b64(k),
                "created_at": k.created_at.isoformat(),
                "trusted_until": k.trusted_until.isoformat() if k.trusted_until else None,
            }
            for k in signing_keys.list_keys(db)
        ]
    _emit(
        args,
        rows,
        lambda: (
            "\n".join(f"{r['kid']}\t{r['purpose']}\t{r['state']}\t{r['public_key']}" for r in rows)
            or "no keys"
        ),
    )
    return EXIT_OK


def cmd_alarms(args: argparse.Namespace, config: CentralConfig) -> int:
    """`alarms list` / `alarms ack ID --note N` / `alarms test` (a test message to every target)."""
    from central.store import alarms as alarm_store
    from central.store import audit

    if args.alarms_cmd == "test":
        return _alarms_test(args, config)
    now = dt.datetime.now(dt.UTC)
    with _database(config) as db:
        if args.alarms_cmd == "ack":
            change = alarm_store.acknowledge(
                db, alarm_id=args.alarm_id, staff_id=None, note=args.note, now=now
            )
            audit.record(
                db,
                actor=f"{CLI_ACTOR}:{args.by}" if args.by else CLI_ACTOR,
                action="alarm_acknowledged",
                target_type="alarm",
                target_id=str(args.alarm_id),
                district_id=change.district_id,
                details={"kind": change.data["kind"], "station_id": change.station_id, "note": args.note},
            )
            if config.alarms.notify_acknowledged:
                alarm_store.queue_fanout(db, alarm_id=args.alarm_id, purpose="acknowledged", now=now)
            _emit(args, change.data, f"alarm {args.alarm_id} acknowledged")
            return EXIT_OK
        rows = [
            alarm_store.public(a) for a in alarm_store.list_alarms(db, state=args.state, limit=args.limit)
        ]
    _emit(
        args,
        rows,
        lambda: (
            "\n".join(
                f"#{a['id']:<6} {a['state']:<12} {a['severity']:<9} {a['kind']:<18} "
                f"{a['station_id'] or '-':<16} {a['raised_at']}"
                for a in rows
            )
            or "no alarms"
        ),
    )
    return EXIT_OK


def _alarms_test(args: argparse.Namespace, config: CentralConfig) -> int:
    from central.alarms.messages import AlarmView, compose
    from central.alarms.notifier import Sender
    from central.alarms.targets import load_targets

    targets = [
        t
        for t in load_targets(config.alarms)
        if (args.district is None or t.district in (args.district, "*"))
        and (args.target is None or t.label == args.target)
    ]
    if not targets:
        raise CliRefusal("no [[alarms.webhooks]] or [[alarms.email]] target matches")
    view = AlarmView(
        id=0, kind="station_offline", severity="warning", state="open", station_id=None, station_name=None,
        district_id=args.district, address=None, contact_phone=None, raised_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    notice = compose(
        view, "test", language=config.alarms.language, timezone=config.alarms.timezone,
        dashboard_url=config.web.public_url,
    )  # fmt: skip
    sender = Sender(config.alarms, targets)
    try:
        results = [(t, sender.deliver(t, notice)) for t in targets]
    finally:
        sender.close()
    value = [{"target": t.label, "channel": t.channel, "ok": o.ok, "error": o.error} for t, o in results]
    _emit(
        args,
        value,
        lambda: "\n".join(
            f"{t.label} ({t.channel}): " + ("ok" if o.ok else f"FAILED: {o.error}") for t, o in results
        ),
    )
    return EXIT_OK if all(o.ok for _, o in results) else EXIT_BUG


def cmd_run(args: argparse.Namespace, config: CentralConfig) -> int:
    from central.app import CentralApp

    app = CentralApp(config)
    app.start()
    try:
        app.serve()
    finally:
        app.close()
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace, config: CentralConfig) -> int:
    """The MQTT side only (ingest workers, roster fan-out, housekeeping), no web server: for more
    ingest processes on this or other hosts (each with its own `[mqtt] client_id`)."""
    from central.app import CentralApp

    if not config.mqtt.enabled:
        raise CliRefusal("[mqtt] enabled = false: there is nothing to ingest")
    app = CentralApp(config)
    app.start()
    try:
        app.wait()
    finally:
        app.close()
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------------


def _aware(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {value!r} (e.g. 2027-12-31T23:59+08:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _limit(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 100_000:
        raise argparse.ArgumentTypeError("between 1 and 100000")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yizhan-central", description="The centre of a fleet of yizhan stations."
    )
    parser.add_argument(
        "--config", type=Path, help="central.toml (default: $YIZHAN_CENTRAL_CONFIG, ./central.toml)"
    )
    parser.add_argument("--log-format", choices=("json", "text"), help="override [logging] format")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create or upgrade the database and create an admin account")
    init.add_argument("--admin", required=True, help="user name of the admin account to create")
    init.set_defaults(handler=cmd_init)

    stations = sub.add_parser("stations", help="register and list stations").add_subparsers(
        dest="stations_cmd", required=True
    )
    add = stations.add_parser("add", help="register a station")
    add.add_argument("station_id")
    add.add_argument("--name", required=True)
    add.add_argument("--district", default="default", help="district id (created if new; default: default)")
    add.add_argument("--address")
    add.add_argument("--lat", type=float, help="latitude, WGS-84 degrees")
    add.add_argument("--lon", type=float, help="longitude, WGS-84 degrees")
    add.add_argument("--hours", help="opening hours as JSON ([schedule] shape) or @file.json; default: 24 h")
    add.add_argument(
        "--service", action="append", help="a service offered (repeatable): water, microwave, ..."
    )
    add.add_argument("--contact-name")
    add.add_argument("--contact-phone")
    add.add_argument(
        "--group", action="append", help="a member group allowed in (repeatable; none: everyone)"
    )
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=cmd_stations)
    poster = stations.add_parser("poster", help="the A4 door poster (QR code to the station's phone page)")
    poster.add_argument("station_id")
    poster.add_argument("--png", type=Path, help="write the poster as PNG (300 dpi) to this file")
    poster.add_argument("--pdf", type=Path, help="write the poster as a one-page A4 PDF to this file")
    poster.add_argument("--base-url", help="the centre's address for phones (default: [web] public_url)")
    poster.add_argument("--json", action="store_true")
    poster.set_defaults(handler=cmd_stations)
    listing = stations.add_parser("list", help="list stations")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_stations)

    members = sub.add_parser("members", help="list and add members").add_subparsers(
        dest="members_cmd", required=True
    )
    madd = members.add_parser("add", help="add a member (no face: the QR pass always works)")
    madd.add_argument("member_id", nargs="?", help="default: a new random id")
    madd.add_argument("--name", required=True)
    madd.add_argument("--phone")
    madd.add_argument("--kind", choices=("courier", "rider", "sanitation", "driver", "other"))
    madd.add_argument("--employer")
    madd.add_argument("--group", action="append")
    madd.add_argument("--valid-until", type=_aware)
    madd.add_argument("--json", action="store_true")
    madd.set_defaults(handler=cmd_members)
    mlist = members.add_parser("list", help="list members with their template counts")
    mlist.add_argument("--search")
    mlist.add_argument("--limit", type=_limit, default=1000)
    mlist.add_argument("--json", action="store_true")
    mlist.set_defaults(handler=cmd_members)

    events = sub.add_parser("events", help="events the stations sent").add_subparsers(
        dest="events_cmd", required=True
    )
    elist = events.add_parser("list", help="newest first")
    elist.add_argument("--station")
    elist.add_argument("--since", type=_aware)
    elist.add_argument("--limit", type=_limit, default=100)
    elist.add_argument("--json", action="store_true")
    elist.set_defaults(handler=cmd_events)

    keys = sub.add_parser("keys", help="the centre's signing keys").add_subparsers(
        dest="keys_cmd", required=True
    )
    rotate = keys.add_parser(
        "rotate", help="new signing key; the old one stays trusted until its passes expire"
    )
    rotate.add_argument(
        "--purpose",
        choices=("qr", "messages"),
        default="qr",
        help="qr: member passes (default); messages: down/",
    )
    rotate.add_argument("--label", default="")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(handler=cmd_keys)
    klist = keys.add_parser("list")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(handler=cmd_keys)

    alarms = sub.add_parser(
        "alarms", help="alarms: list, acknowledge, test the notifications"
    ).add_subparsers(dest="alarms_cmd", required=True)
    alist = alarms.add_parser("list", help="newest first")
    alist.add_argument("--state", choices=("open", "acknowledged"))
    alist.add_argument("--limit", type=_limit, default=100)
    alist.add_argument("--json", action="store_true")
    alist.set_defaults(handler=cmd_alarms)
    aack = alarms.add_parser("ack", help="acknowledge an alarm with a note (what was done)")
    aack.add_argument("alarm_id", type=int)
    aack.add_argument("--note", required=True)
    aack.add_argument("--by", help="who (recorded in the audit log)")
    aack.add_argument("--json", action="store_true")
    aack.set_defaults(handler=cmd_alarms)
    atest = alarms.add_parser(
        "test", help="send a test message to every configured target now; exit 1 if one failed"
    )
    atest.add_argument("--district", help="only the targets of this district (and the '*' ones)")
    atest.add_argument("--target", help="only the target with this label")
    atest.add_argument("--json", action="store_true")
    atest.set_defaults(handler=cmd_alarms)

    run = sub.add_parser("run", help="serve the dashboard and the API, ingest, raise and send alarms")
    run.set_defaults(handler=cmd_run)
    ingest = sub.add_parser(
        "ingest",
        help="ingest only, no web server (more workers on this or other hosts: own [mqtt] client_id)",
    )
    ingest.set_defaults(handler=cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, source = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"yizhan-central: {exc}\n")
        return EXIT_REFUSED
    configure_logging(config.logging.level, args.log_format or config.logging.format)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines narrate every start
    log.debug("configuration loaded", extra={"fields": {"source": source}})
    try:
        return int(args.handler(args, config))
    except (CliRefusal, CredentialError, ConfigError) as exc:
        sys.stderr.write(f"yizhan-central {args.command}: {exc}\n")
        return EXIT_REFUSED
    except OperationalError as exc:
        sys.stderr.write(f"yizhan-central {args.command}: the database cannot be used: {exc.orig or exc}\n")
        return EXIT_DATA
    except StoreError as exc:
        if isinstance(exc, ValueError | LookupError):  # refused input: validation, duplicate, not found
            sys.stderr.write(f"yizhan-central {args.command}: {exc}\n")
            return EXIT_REFUSED
        sys.stderr.write(f"yizhan-central {args.command}: stored data cannot be used: {exc}\n")
        return EXIT_DATA
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("unexpected error", extra={"fields": {"command": args.command}})
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
