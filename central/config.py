"""The centre's configuration: one typed model, one small section per subsystem.

Loaded from TOML like the station's (`--config PATH`, else `$YIZHAN_CENTRAL_CONFIG`, else
`./central.toml`, else built-in defaults that run on a laptop with data under `./var-central/`).
Unknown keys are refused with the key named (`common.config_files`); every number has bounds.
Secrets never live in the TOML: passwords, tokens and webhook URLs that embed a key are read from
`*_file` keys (mode 0600). Relative paths are relative to the config file's folder.

Sections that later parts of the centre fill (`[alarms]`, `[snapshots]`, `[sms]`) are defined here
already, small and bounded, so their keys are part of one documented file from the start.
"""

from __future__ import annotations

import socket
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from common.auth_settings import AuthSettings
from common.broker_config import BrokerConnection
from common.config_files import ConfigError as ConfigError
from common.config_files import Section, find_config, read_toml, rebased, validate_config
from common.logging_setup import LoggingConfig

ENV_CONFIG = "YIZHAN_CENTRAL_CONFIG"
DEFAULT_CONFIG_NAME = "central.toml"
EXAMPLE_CONFIG = "central.example.toml"
DATABASE_FILE = "central.db"

DISTRICT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
ANY_DISTRICT = "*"


class StorageConfig(Section):
    data_dir: Path = Field(
        Path("var-central"), description="The SQLite database (by default), snapshots and the data key."
    )
    key_file: Path | None = Field(
        None,
        description="Data key (32 bytes, hex) that encrypts face templates and QR signing keys at rest. "
        "Default: <data_dir>/central.key, created with mode 0600 on first use. "
        "$YIZHAN_CENTRAL_KEY overrides both. Keep it out of database backups.",
    )

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"


class DatabaseConfig(Section):
    url: str | None = Field(
        None,
        max_length=2000,
        description="SQLAlchemy URL. Default: SQLite at <data_dir>/central.db. PostgreSQL: "
        '"postgresql+psycopg://yizhan@db.example/yizhan" (the password in password_file).',
    )
    password_file: Path | None = Field(
        None, description="File holding the database password (mode 0600), added to the URL at connect."
    )
    pool_size: int = Field(10, ge=1, le=200, description="PostgreSQL connections kept open per process.")
    max_overflow: int = Field(10, ge=0, le=200, description="Extra connections allowed under load.")
    pool_timeout_s: float = Field(
        10.0, ge=0.5, le=300.0, allow_inf_nan=False, description="Wait at most this long for a connection."
    )
    connect_timeout_s: int = Field(10, ge=1, le=300, description="TCP connect timeout to PostgreSQL.")
    statement_timeout_s: float = Field(
        60.0,
        ge=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="PostgreSQL cancels a statement running longer (0: no limit). Migrations are exempt.",
    )

    @field_validator("url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normalised = normalise_database_url(value)
        return normalised.render_as_string(hide_password=False)

    def rebased(self, base: Path) -> DatabaseConfig:
        """Relative file paths (password_file, a SQLite file in url) taken relative to `base`."""
        changes: dict[str, Any] = {"password_file": rebased(self.password_file, base)}
        if self.url is not None:
            url = make_url(self.url)
            if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
                changes["url"] = url.set(database=str(base / url.database)).render_as_string(
                    hide_password=False
                )
        return self.model_copy(update=changes)

    def effective_url(self, data_dir: Path) -> URL:
        """The URL to connect to: the configured one, else SQLite under `data_dir`."""
        if self.url is None:
            return make_url(f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}")
        return make_url(self.url)


def normalise_database_url(value: str) -> URL:
    """A usable URL, or ValueError saying why: only SQLite and PostgreSQL through psycopg 3.

    `postgresql://` and `postgres://` mean psycopg 3 here (psycopg2 is not installed).
    """
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "not a database URL (e.g. postgresql+psycopg://user@host/db or sqlite:///path)"
        ) from None
    backend, _, driver = url.drivername.partition("+")  # no dialect is loaded to look at the name
    if backend in ("postgresql", "postgres"):
        if driver in ("", "psycopg"):
            return url.set(drivername="postgresql+psycopg")
        raise ValueError(f"PostgreSQL is reached through psycopg 3 (postgresql+psycopg://), not {driver!r}")
    if backend == "sqlite":
        if driver:
            raise ValueError(f"SQLite is used through the standard driver (sqlite:///path), not {driver!r}")
        if not url.database or url.database == ":memory:":
            raise ValueError(
                "SQLite needs a file path (sqlite:///path/central.db): memory would lose everything"
            )
        return url
    raise ValueError(f"database {backend!r} is not supported: PostgreSQL or SQLite")


class MqttConfig(BrokerConnection):
    """The centre's side of docs/mqtt.md: shared subscription, persistent session, acknowledgements."""

    enabled: bool = Field(
        True, description="`run` ingests station messages (off: dashboard and API only, no broker needed)."
    )
    username: str | None = Field(
        "centre", min_length=1, max_length=64, description="Broker user name of the centre's workers."
    )
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=48,
        pattern=r"^[A-Za-z0-9._-]+$",
        description='Client id prefix of the ingest workers; default "yz-centre-<host name>". Worker n '
        "connects as <prefix>-<n>: stable ids keep persistent sessions across restarts.",
    )
    shared_group: str = Field(
        "centre",
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="MQTT v5 shared-subscription group ($share/<group>/...): workers in one group split "
        "the stations' messages, and any of them can die.",
    )
    workers: int = Field(1, ge=1, le=32, description="Ingest workers `run` starts.")
    receive_maximum: int = Field(
        2000,
        ge=10,
        le=65_535,
        description="Messages the broker may have in flight to one worker before its PUBACKs (which "
        "wait for the database commit): the window that lets batches fill.",
    )
    batch_max: int = Field(
        500, ge=1, le=10_000, description="A worker commits after this many messages, or after batch_ms."
    )
    batch_ms: int = Field(
        50, ge=1, le=10_000, description="...or this long after the first message of a batch arrived."
    )
    queue_mb: int = Field(
        256,
        ge=8,
        le=65_536,
        description="Bytes of received, not yet stored messages one worker holds before it stops reading "
        "from the broker (back-pressure: the broker keeps the rest).",
    )
    snapshot_park_s: float = Field(
        10.0,
        ge=0.0,
        le=300.0,
        allow_inf_nan=False,
        description="A snapshot whose event is not stored yet waits this long for it (the event may be in "
        "another worker's batch); then it is refused and not acknowledged, and the station sends it again.",
    )
    max_payload_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="Larger messages from stations are refused unread (snapshots are the big ones).",
    )
    ack_interval_s: float = Field(
        1.0,
        ge=0.1,
        le=60.0,
        allow_inf_nan=False,
        description="How often the down/ack watermark goes to a station while its messages flow.",
    )
    command_ttl_s: int = Field(
        30,
        ge=5,
        le=300,
        description="Commands expire this long after they are issued (a station refuses them later; "
        "must stay within the stations' command_max_ttl_s, 300 by default).",
    )

    def effective_client_id(self, worker: int) -> str:
        prefix = self.client_id or f"yz-centre-{_host_label()}"
        return f"{prefix}-{worker}"


def _host_label() -> str:
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return name[:32] or "host"


class WebConfig(AuthSettings):
    """The staff dashboard, the workers' pages and the public station directory."""

    host: str = Field("127.0.0.1", min_length=1, max_length=253, description="Bind address.")
    port: int = Field(8090, ge=1, le=65535, description="TCP port.")
    public_url: str | None = Field(
        None,
        max_length=300,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="The centre's address as workers' phones reach it (posters' QR codes point here), "
        'e.g. "https://yizhan.example.org". Default: taken from each request.',
    )
    max_sessions: int = Field(
        1000, ge=1, le=100_000, description="Staff logins kept at once; the oldest ends when more are opened."
    )
    max_json_kb: int = Field(256, ge=16, le=4096, description="Largest JSON request body (KiB); bigger: 413.")
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Addresses of reverse proxies whose X-Forwarded-For is trusted (the login throttle "
        "counts per client address). Empty: proxy headers ignored.",
    )


AlarmSeverity = Literal["warning", "critical", "emergency"]


class WebhookTarget(Section):
    """One group robot of a messaging tool that a union office watches."""

    district: str = Field(
        ANY_DISTRICT, pattern=rf"{DISTRICT_PATTERN}|^\*$", description='District, or "*" for every district.'
    )
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Label in logs and the notification log (default: format, district, URL hash).",
    )
    min_severity: AlarmSeverity = Field("warning", description="Less severe alarms are not sent here.")
    escalation: bool = Field(
        False,
        description="An escalation list: only reminders of an emergency nobody acknowledged, from the "
        "[alarms] escalate_after_reminders-th on.",
    )
    mention_all: bool = Field(True, description="Mention everyone in the group (@all) for emergencies.")
    format: Literal["wecom", "dingtalk", "feishu"] = Field(description="The robot's JSON format.")
    url: str | None = Field(
        None,
        max_length=1000,
        pattern=r"^https?://\S+$",
        description="Webhook URL (prefer url_file: it holds a key).",
    )
    url_file: Path | None = Field(None, description="File holding the webhook URL (mode 0600).")
    secret_file: Path | None = Field(
        None, description="Signing secret (DingTalk / Feishu 'sign' security setting), mode 0600."
    )

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("give exactly one of url and url_file")
        return self


class SmtpConfig(Section):
    host: str | None = Field(None, min_length=1, max_length=253, description="SMTP server; unset: no e-mail.")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="How the connection is secured."
    )
    username: str | None = Field(None, min_length=1, max_length=200)
    password_file: Path | None = Field(None, description="File holding the SMTP password (mode 0600).")
    sender: str | None = Field(
        None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$", description="From address."
    )
    timeout_s: float = Field(10.0, ge=1.0, le=120.0, allow_inf_nan=False)
    ca_file: Path | None = Field(
        None, description="CA certificate(s) (PEM) of the SMTP server's certificate; default: system CAs."
    )


class EmailTarget(Section):
    district: str = Field(ANY_DISTRICT, pattern=rf"{DISTRICT_PATTERN}|^\*$")
    to: list[str] = Field(min_length=1, max_length=50, description="Recipients of this district's alarms.")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Label in logs.")
    min_severity: AlarmSeverity = Field("warning", description="Alarms below this severity are not sent.")
    escalation: bool = Field(False, description="Only reminders of unacknowledged emergencies.")

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or any(c.isspace() for c in address) or len(address) > 254:
                raise ValueError(f"not an e-mail address: {address[:60]!r}")
        return value


class AlarmsConfig(Section):
    """When an alarm is raised and who hears about it (webhooks per district, e-mail)."""

    offline_after_s: int = Field(
        180, ge=30, le=86_400, description="A station silent this long (no heartbeat) raises station_offline."
    )
    emergency_resend_s: int = Field(
        300, ge=30, le=86_400, description="An unacknowledged emergency is sent again this often."
    )
    emergency_resend_max: int = Field(
        12, ge=0, le=1000, description="... at most this many times (0: never sent again)."
    )
    escalate_after_reminders: int = Field(
        2,
        ge=1,
        le=1000,
        description="From this reminder of an unacknowledged emergency on, escalation targets get it too.",
    )
    notify_cleared: bool = Field(True, description="Tell the groups when a condition clears (station back).")
    notify_acknowledged: bool = Field(
        True, description="Tell the groups who acknowledged an alarm, with the note."
    )
    retry_attempts: int = Field(
        8, ge=1, le=100, description="Attempts per message and target before it is given up (logged)."
    )
    retry_base_s: float = Field(
        2.0, ge=0.1, le=3600.0, allow_inf_nan=False, description="Wait after the first failed attempt."
    )
    retry_max_s: float = Field(
        300.0, ge=1.0, le=86_400.0, allow_inf_nan=False, description="The wait doubles up to this."
    )
    sweep_interval_s: float = Field(
        5.0,
        ge=0.5,
        le=600.0,
        allow_inf_nan=False,
        description="How often the database is swept for alarm events the live bus missed and for "
        "stations whose heartbeat is overdue.",
    )
    sweep_lookback_s: int = Field(
        86_400,
        ge=600,
        le=30 * 86_400,
        description="At start, events received this far back are checked for alarms not yet raised.",
    )
    timezone: str = Field("Asia/Shanghai", max_length=64, description="Times in notifications.")
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="Language of notifications.")
    notify_threads: int = Field(
        4, ge=1, le=64, description="Messages sent at once (a slow group robot must not hold up others)."
    )
    clock_skew_max_s: int = Field(
        120, ge=5, le=86_400, description="A station clock further off than this raises clock_wrong."
    )
    refusals_per_10min: int = Field(
        20, ge=3, le=10_000, description="This many refusals at one station in 10 minutes raise an alarm."
    )
    webhook_timeout_s: float = Field(5.0, ge=0.5, le=60.0, allow_inf_nan=False)
    webhooks: list[WebhookTarget] = Field(default_factory=list, max_length=200)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    email: list[EmailTarget] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _email_needs_smtp(self) -> Self:
        if self.email and (self.smtp.host is None or self.smtp.sender is None):
            raise ValueError("[[alarms.email]] needs [alarms.smtp] host and sender")
        if self.retry_max_s < self.retry_base_s:
            raise ValueError("retry_max_s must be at least retry_base_s")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value


class SnapshotsConfig(Section):
    """Entry photos uploaded by the stations: JPEG files under <data_dir>/snapshots/<date>/."""

    retention_days: int = Field(
        90, ge=1, le=3650, description="Snapshots older than this are deleted (the event row stays)."
    )
    disk_budget_mb: int = Field(
        20_480, ge=10, le=100_000_000, description="Snapshots use at most this much; the oldest go first."
    )
    min_free_mb: int = Field(
        1024, ge=0, le=1_000_000, description="Keep this much free on the disk, whatever the budget says."
    )
    max_bytes: int = Field(
        4 * 1024 * 1024, ge=16 * 1024, le=64 * 1024 * 1024, description="Larger snapshots are refused."
    )


class QrConfig(Section):
    """Member passes: signed by the centre, checked offline by the stations (public keys only)."""

    max_pass_ttl_s: int = Field(
        365 * 86_400,
        ge=60,
        le=5 * 365 * 86_400,
        description="Longest validity of a pass the centre issues. After `keys rotate` the old key keeps "
        "being trusted this long, so passes signed just before the rotation keep working.",
    )


class SmsConfig(Section):
    """Workers' phones (issue 11): one-time codes through an HTTP SMS gateway."""

    url: str | None = Field(
        None,
        max_length=1000,
        pattern=r"^https?://\S+$",
        description="Gateway endpoint (POST JSON). Unset: registrations wait for staff approval.",
    )
    token_file: Path | None = Field(None, description="File holding the gateway's API token (mode 0600).")
    timeout_s: float = Field(5.0, ge=0.5, le=60.0, allow_inf_nan=False)
    code_length: int = Field(6, ge=4, le=10, description="Digits in a one-time code.")
    code_ttl_s: int = Field(300, ge=60, le=3600, description="A code is valid this long.")
    max_attempts: int = Field(5, ge=1, le=20, description="Wrong codes before the code is void.")
    sends_per_phone_per_hour: int = Field(5, ge=1, le=100, description="Codes sent to one number per hour.")
    sends_per_address_per_hour: int = Field(
        20, ge=1, le=10_000, description="Codes requested from one client address per hour (all numbers)."
    )
    failures_per_phone_per_hour: int = Field(
        10,
        ge=1,
        le=100,
        description="Wrong codes for one number per hour (over all its codes) before the number is locked "
        "for the rest of the hour.",
    )
    text: str = Field(
        "【工会驿站】您的验证码是{code}，{minutes}分钟内有效。如非本人操作，请忽略。",
        min_length=8,
        max_length=300,
        description="The message; {code} and {minutes} are filled in. Gateways that send by template "
        "get code and minutes as separate JSON fields too.",
    )

    @field_validator("text")
    @classmethod
    def _has_code(cls, value: str) -> str:
        if "{code}" not in value:
            raise ValueError("the text must contain {code}")
        try:
            value.format(code="0", minutes=5)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{code}} and {{minutes}} may be filled in ({exc})") from None
        return value


class PhoneConfig(Section):
    """Workers' phone pages (issue 11): logins, the rotating pass, opening by phone, posters."""

    login_ttl_days: int = Field(
        180, ge=1, le=730, description="A phone stays logged in this long (revocable at any time)."
    )
    pass_ttl_s: int = Field(
        180,
        ge=60,
        le=3600,
        description="The phone's pass expires this long after it was drawn (stations add their "
        "max_clock_skew_s); the page draws a new one every pass_refresh_s.",
    )
    pass_refresh_s: int = Field(60, ge=10, le=600, description="The page renews the pass this often.")
    open_cooldown_s: int = Field(
        10, ge=0, le=3600, description="A member's door opened by phone is not opened again sooner."
    )
    opens_per_member_per_10min: int = Field(
        10, ge=1, le=1000, description="Open requests one member may make in 10 minutes (all stations)."
    )
    opens_per_address_per_10min: int = Field(
        120,
        ge=1,
        le=100_000,
        description="Open requests from one client address in 10 minutes (riders behind one carrier NAT "
        "share an address).",
    )
    requests_per_address_per_minute: int = Field(
        600, ge=10, le=1_000_000, description="Any phone API request from one client address per minute."
    )
    keep_opens_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Phone opening requests (who asked, from which address) are kept this long; the door's "
        "own event stays in the event log.",
    )
    answer_timeout_s: float = Field(
        4.0,
        ge=0.5,
        le=30.0,
        allow_inf_nan=False,
        description="How long the page waits for the door's answer before it says none came and shows "
        "the pass.",
    )
    open_command_ttl_s: int = Field(
        15,
        ge=5,
        le=300,
        description="A door-open command from a phone expires this long after it is sent, so a station "
        "that was unreachable does not open later for nobody.",
    )
    registrations_per_address_per_hour: int = Field(
        5, ge=1, le=10_000, description="Registrations from one client address per hour."
    )
    registrations_per_hour: int = Field(
        500, ge=1, le=1_000_000, description="Registrations per hour in all (a flood brake)."
    )
    poster_font_file: Path | None = Field(
        None,
        description="A TrueType/OpenType font with Chinese characters for posters. Default: the first "
        "found of WenQuanYi Zen Hei, Noto Sans CJK and Droid Sans Fallback.",
    )


_TILE_URL = r"^(/tiles/|https?://[^\s/?#]+/)[^\s]*$"


class DashboardConfig(Section):
    """The staff dashboard: where its map tiles come from, how its live feed learns of new rows.

    The map draws stations with Leaflet (vendored, no CDN). Tiles come from the server configured
    here and from nowhere else (the page's Content-Security-Policy allows only that origin): by
    default none at all, so the dashboard works offline and in China without a foreign tile server;
    stations are then drawn on a plain grid. `tiles_dir` serves a local tile set (z/x/y.png) at
    /tiles/; an online server (e.g. AMap, whose tiles use GCJ-02: set `tile_datum = "gcj02"`) is
    one URL template.
    """

    tile_url: str = Field(
        "",
        max_length=500,
        pattern=rf"{_TILE_URL}|^$",
        description='Tile URL template with {z} {x} {y} (and {s}), e.g. "/tiles/{z}/{x}/{y}.png" for '
        "tiles_dir, or an https:// server. Empty: no tiles (offline).",
    )
    tile_subdomains: str = Field("abc", pattern=r"^[A-Za-z0-9]{1,8}$", description="Values of {s}.")
    tile_attribution: str = Field("", max_length=300, description="Credit line the tile provider asks for.")
    tile_datum: Literal["wgs84", "gcj02"] = Field(
        "wgs84",
        description='Datum of the tiles: "gcj02" for Chinese providers (AMap, Tencent); stations are '
        "stored in WGS-84 and shifted for display.",
    )
    tile_max_zoom: int = Field(18, ge=1, le=22)
    tiles_dir: Path | None = Field(None, description="Folder served at /tiles/ (a local tile set).")
    map_center: list[float] = Field(
        default_factory=lambda: [39.9042, 116.4074],
        min_length=2,
        max_length=2,
        description="Map centre [latitude, longitude] before stations are known.",
    )
    map_zoom: int = Field(10, ge=1, le=22)
    live_poll_s: float = Field(
        2.0,
        ge=0.0,
        le=60.0,
        allow_inf_nan=False,
        description="The live feed reads new events, snapshots and alarms from the database this often "
        "(0: off). Needed when ingest runs in other processes: the live bus is per process.",
    )
    export_max_days: int = Field(400, ge=1, le=3660, description="Longest period of one visits export.")

    @field_validator("tile_url")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        if value and not all(p in value for p in ("{z}", "{x}", "{y}")):
            raise ValueError("a tile URL needs the {z}, {x} and {y} placeholders")
        return value

    @field_validator("map_center")
    @classmethod
    def _center(cls, value: list[float]) -> list[float]:
        if not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180):
            raise ValueError("map_center is [latitude, longitude] in degrees")
        return value

    @property
    def tile_origin(self) -> str | None:
        """The origin the page may load tiles from (for the CSP), `{s}` as a wildcard label."""
        if not self.tile_url.startswith(("http://", "https://")):
            return None
        scheme, _, rest = self.tile_url.partition("://")
        host = rest.split("/", 1)[0]
        labels = ["*" if "{" in label else label for label in host.split(".")]
        if "*" in labels:
            labels = ["*", *labels[labels.index("*") + 1 :]]
        return f"{scheme}://{'.'.join(labels)}"


class CentralConfig(Section):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    snapshots: SnapshotsConfig = Field(default_factory=SnapshotsConfig)
    qr: QrConfig = Field(default_factory=QrConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    phone: PhoneConfig = Field(default_factory=PhoneConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @property
    def database_url(self) -> URL:
        return self.database.effective_url(self.storage.data_dir)


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None
) -> CentralConfig:
    """Validate a parsed TOML mapping; relative paths are taken relative to `base_dir`."""
    config = validate_config(CentralConfig, data, source, EXAMPLE_CONFIG)
    return config if base_dir is None else _rebase(config, base_dir)


def _rebase(config: CentralConfig, base: Path) -> CentralConfig:
    def files(section: Section, *keys: str) -> Any:
        return section.model_copy(update={key: rebased(getattr(section, key), base) for key in keys})

    alarms = config.alarms.model_copy(
        update={
            "webhooks": [files(w, "url_file", "secret_file") for w in config.alarms.webhooks],
            "smtp": files(config.alarms.smtp, "password_file", "ca_file"),
        }
    )
    return config.model_copy(
        update={
            "storage": files(config.storage, "data_dir", "key_file"),
            "database": config.database.rebased(base),
            "mqtt": config.mqtt.rebased(base),
            "alarms": alarms,
            "sms": files(config.sms, "token_file"),
            "phone": files(config.phone, "poster_font_file"),
            "dashboard": files(config.dashboard, "tiles_dir"),
        }
    )


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[CentralConfig, str]:
    """Find, read and validate the configuration. Returns (config, where it came from)."""
    path = find_config(path, env=env, env_var=ENV_CONFIG, default_name=DEFAULT_CONFIG_NAME)
    if path is None:
        return parse_config({}, "built-in defaults", Path.cwd()), "built-in defaults"
    return parse_config(read_toml(path), str(path), path.resolve().parent), str(path)
