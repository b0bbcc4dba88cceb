"""The fleet demo's composition root: set up, start, tell the story, keep running until Ctrl-C.

Set-up is what an installer does, with the real commands (docs/INSTALL-CENTRE.md): a broker
from docs/mosquitto/ (a CA and a server certificate, one password per station, the centre's own
login), `yizhan-central init` (the admin's password and the centre's message-signing key),
`yizhan-central stations add`, and per station a config whose `[mqtt]` section speaks TLS with
the station's own password, `yizhan sync trust <the centre's key>` (pinning: the station then
accepts only what the centre signed), and a face enrolled on site with `yizhan enroll`.

The story, read from the centre's own API as a member of staff would see it: both stations
online; their entries and refusals (with snapshots) arriving; a member enrolled at st-a with
cross-station consent reaching the centre and then st-b's roster, and opening st-b's door; a
member enrolled at st-a *without* that consent staying a stranger at st-b; the refusals at st-b
raising an alarm that the group robot receives; st-b losing power (SIGKILL: the broker's last
will) raising "station offline", and coming back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.broker import Broker, find_mosquitto, free_port, start_broker
from demo.pki import server_certs
from demo.processes import Child, child_env, python_module
from demo.robot import Robot

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
WEB_PORT = 8090
_MARKUP = re.compile(r"<[^>]+>|\*\*")


@dataclass(frozen=True)
class StationPlan:
    station_id: str
    name: str
    district: str
    address: str
    lat: float
    lon: float
    #: (fixture photo, seconds in front of the camera) in the looping door video; None: nobody. Four
    #: seconds: a stranger is refused after three unknown encodings, slow on a loaded laptop.
    scenes: tuple[tuple[str | None, float], ...]


STATIONS = (
    StationPlan(
        "st-a",
        "学院路驿站",
        "haidian",
        "海淀区学院路 30 号",
        39.9897,
        116.3535,
        (
            (None, 1.5),
            ("biden_1.jpg", 4.0),
            (None, 2.0),
            ("obama_2.jpg", 4.0),
            (None, 1.5),
            ("eileen_collins.png", 4.0),
            (None, 2.0),
        ),
    ),
    StationPlan(
        "st-b",
        "望京驿站",
        "chaoyang",
        "朝阳区望京街 9 号",
        39.9962,
        116.4705,
        ((None, 1.5), ("obama_2.jpg", 4.0), (None, 2.0), ("biden_1.jpg", 4.0), (None, 2.0)),
    ),
)
#: Enrolled at st-a before it starts, without cross-station consent: its face stays at st-a.
HOME_ONLY = ("m-biden", "拜登", "biden_1.jpg")
#: Enrolled at st-a while the fleet runs, with cross-station consent: it opens st-b too.
TRAVELLER = ("m-obama", "奥巴马", "obama_1.jpg")


class DemoFailed(Exception):
    """A step of the story did not happen in time (the logs in the demo folder say why)."""


@dataclass
class Fleet:
    folder: Path
    say: Callable[[str], None]
    mosquitto: str
    web_port: int = WEB_PORT
    broker: Broker | None = None
    centre: Child | None = None
    stations: dict[str, Child] = field(default_factory=dict)
    robot: Robot | None = None
    admin_password: str = ""
    token: str = ""
    t0: float = field(default_factory=time.monotonic)
    seen_events: set[str] = field(default_factory=set)
    outcomes: dict[str, bool] = field(default_factory=dict)

    # -- set-up ---------------------------------------------------------------------------------

    def setup(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        passwords = {plan.station_id: secrets.token_urlsafe(18) for plan in STATIONS}
        centre_password = secrets.token_urlsafe(18)
        certs = server_certs(self.folder / "broker")
        self.broker = start_broker(self.folder / "broker", self.mosquitto, certs, passwords, centre_password)
        self.robot = Robot(self._robot_says)
        self.web_port = self.web_port if _port_free(self.web_port) else free_port()
        centre_dir = self.folder / "centre"
        centre_dir.mkdir(parents=True, exist_ok=True)
        _secret(centre_dir / "mqtt.password", centre_password)
        (centre_dir / "central.toml").write_text(self._centre_toml(), encoding="utf-8")
        init = self._central("init", "--admin", "admin")
        self.admin_password = init.splitlines()[-1].strip()
        match = re.search(r"message signing key: (\S+) (\S+)", init)
        if match is None:
            raise DemoFailed(f"yizhan-central init did not print the message signing key:\n{init}")
        centre_key = match.group(2)
        for plan in STATIONS:
            self._central(
                "stations", "add", plan.station_id, "--name", plan.name, "--district", plan.district,
                "--address", plan.address, "--lat", str(plan.lat), "--lon", str(plan.lon),
                "--service", "water", "--service", "microwave", "--service", "charger",
            )  # fmt: skip
            self._station_setup(plan, passwords[plan.station_id], certs.ca, centre_key)

    def _centre_toml(self) -> str:
        assert self.broker is not None and self.robot is not None
        return f"""# The demo centre: SQLite under this folder, the broker's centre listener, a group robot.
[storage]
data_dir = "data"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {self.broker.centre_port}
username = "centre"
password_file = "mqtt.password"
client_id = "yz-centre-demo"
[web]
host = "127.0.0.1"
port = {self.web_port}
public_url = "http://127.0.0.1:{self.web_port}"
[alarms]
# Smaller numbers than production so the story fits in a few minutes.
offline_after_s = 30
refusals_per_10min = 4
emergency_resend_s = 60
sweep_interval_s = 2.0
[[alarms.webhooks]]
district = "*"
format = "wecom"
name = "demo-group"
url = "{self.robot.url}"
[logging]
format = "json"
"""

    def _station_setup(self, plan: StationPlan, password: str, ca: Path, centre_key: str) -> None:
        assert self.broker is not None
        folder = self.folder / plan.station_id
        folder.mkdir(parents=True, exist_ok=True)
        _secret(folder / "mqtt.password", password)
        video = folder / "door.avi"
        (folder / "yizhan.toml").write_text(
            f"""# Demo station {plan.station_id}: a generated door video, mock GPIO, the broker over TLS.
[station]
station_id = "{plan.station_id}"
name = "{plan.name}"
[storage]
data_dir = "data"
[camera]
source = "{video}"
realtime = true
[door.gpio]
pin_factory = "mock"
[api]
enabled = false
[mqtt]
enabled = true
host = "localhost"
port = {self.broker.station_port}
tls = true
ca_file = "{ca}"
password_file = "mqtt.password"
keepalive_s = 10
heartbeat_s = 10.0
[logging]
format = "json"
""",
            encoding="utf-8",
        )
        self._yizhan(plan.station_id, "sync", "trust", centre_key, "--label", "demo centre")
        self._write_video(plan, video)

    def _write_video(self, plan: StationPlan, path: Path) -> None:
        from edge.config import load_config
        from edge.demo import bgr_face
        from edge.demo_video import Scene, write_video
        from edge.station import Station

        config, _ = load_config(self.folder / plan.station_id / "yizhan.toml")
        station = Station(config)
        try:
            scenes = [
                Scene("empty", None, seconds)
                if photo is None
                else Scene("face", bgr_face(station, photo), seconds)
                for photo, seconds in plan.scenes
            ]
        finally:
            station.close()
        write_video(path, scenes)

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        centre_dir = self.folder / "centre"
        self.centre = Child(
            "centre",
            python_module("central.cli", "--config", str(centre_dir / "central.toml"), "run"),
            centre_dir / "centre.log",
            env=child_env(),
        ).start()
        self._wait(lambda: self._get("/healthz") is not None, 60, "the centre did not start")
        self.token = self._login()
        for plan in STATIONS:
            self.start_station(plan.station_id)

    def start_station(self, station_id: str) -> None:
        folder = self.folder / station_id
        self.stations[station_id] = Child(
            station_id,
            python_module("edge.cli", "--config", str(folder / "yizhan.toml"), "run"),
            folder / "station.log",
            env=child_env(),
        ).start()

    def stop(self) -> None:
        for child in reversed([*self.stations.values(), *([self.centre] if self.centre else [])]):
            child.stop()
        if self.broker is not None:
            self.broker.child.stop()
        if self.robot is not None:
            self.robot.close()

    # -- the story ------------------------------------------------------------------------------

    def story(self, timeout: float) -> bool:
        self.step("both stations online, with the centre's roster", timeout, self._all_current)
        home, home_label, home_photo = HOME_ONLY
        self.say(
            f"-- enrolling {home_label} ({home}) at st-a, no cross-station consent: the face stays at st-a"
        )
        self._yizhan(
            "st-a", "enroll", "--member-id", home, "--name", home_label, "--kind", "driver",
            str(FIXTURES / home_photo),
        )  # fmt: skip
        name, label, photo = TRAVELLER
        self.say(f"-- enrolling {label} ({name}) at st-a with cross-station consent (yizhan enroll on st-a)")
        self._yizhan(
            "st-a", "enroll", "--member-id", name, "--name", label, "--kind", "courier",
            "--consent-cross-station", str(FIXTURES / photo),
        )  # fmt: skip
        self.step(f"the centre has {name}'s face from st-a", timeout, lambda: self._templates(name) > 0)
        self.step(f"{home} entered st-a", timeout, lambda: self._entered("st-a", home))
        self.outcomes[f"{home}'s face stayed at st-a (none at the centre)"] = self._templates(home) == 0
        self.step(f"{name}, enrolled at st-a, opened st-b", timeout, lambda: self._entered("st-b", name))
        self.step("entries and refusals from both stations at the centre", timeout, self._both_reporting)
        self.step(
            "the refusals at st-b raised an alarm the group robot received",
            timeout,
            lambda: self.robot is not None and self.robot.received("频繁被拒绝开门"),
        )
        self.outcomes["home-only member still a stranger at st-b"] = not self._entered("st-b", HOME_ONLY[0])
        self.say("-- st-b loses power (SIGKILL): the broker publishes its last will")
        self.stations["st-b"].kill()
        self.step(
            "station offline alarm for st-b reached the group robot",
            timeout,
            lambda: self.robot is not None and self.robot.received("驿站离线"),
        )
        self.say("-- st-b powers up again")
        self.start_station("st-b")
        self.step("st-b back online", timeout, lambda: self._state("st-b") == "online")
        return all(self.outcomes.values())

    def step(self, what: str, timeout: float, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.follow()
            if done():
                self.outcomes[what] = True
                self.say(f"ok {what}")
                return
            time.sleep(0.5)
        self.outcomes[what] = False
        self.say(f"NOT SEEN within {timeout:.0f} s: {what} (logs: {self.folder})")
        raise DemoFailed(what)

    def follow(self) -> None:
        """Print the events the centre stored since the last look, oldest first."""
        events = self._get("/api/v1/events?limit=200") or []
        for event in sorted(events, key=lambda e: str(e.get("received_at") or e.get("ts"))):
            if event["id"] in self.seen_events:
                continue
            self.seen_events.add(event["id"])
            if event["kind"] in ("station_started", "station_stopped", "camera_up"):
                continue
            who = event.get("member_name") or event.get("member_id") or "-"
            why = f" ({event['reason']})" if event.get("reason") else ""
            photo = " [snapshot]" if event.get("snapshot") else ""
            method = event.get("method") or "-"
            self.say(f"   {event['station_id']} {event['kind']:<8} {method:<6} {who}{why}{photo}")

    def _robot_says(self, text: str) -> None:
        head = _MARKUP.sub("", text.splitlines()[0] if text else "")
        self.say(f"   [group chat] {head}")

    # -- reading the centre -----------------------------------------------------------------------

    def _all_current(self) -> bool:
        """Online and holding the centre's roster. (A face enrolled at a station before its first
        roster snapshot is lost with it today: the snapshot sets each member's templates to the
        centre's list, and the centre never receives faces without cross-station consent.)"""
        for plan in STATIONS:
            station = self._get(f"/api/v1/stations/{plan.station_id}")
            if station is None or station.get("state") != "online" or not station.get("applied_version"):
                return False
        return True

    def _state(self, station_id: str) -> str | None:
        station = self._get(f"/api/v1/stations/{station_id}")
        return None if station is None else station.get("state")

    def _both_reporting(self) -> bool:
        events = self._get("/api/v1/events?limit=200") or []
        return {e["station_id"] for e in events if e["kind"] in ("entry", "refused")} >= {"st-a", "st-b"}

    def _templates(self, member_id: str) -> int:
        members = self._get(f"/api/v1/members?search={member_id}") or []
        return sum(int(m.get("templates", 0)) for m in members if m.get("member_id") == member_id)

    def _entered(self, station_id: str, member_id: str) -> bool:
        events = self._get(f"/api/v1/events?station_id={station_id}&limit=200") or []
        return any(e["kind"] == "entry" and e.get("member_id") == member_id for e in events)

    def _login(self) -> str:
        body = json.dumps({"username": "admin", "password": self.admin_password}).encode()
        request = urllib.request.Request(
            self.url + "/api/auth/login",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["token"])

    def _get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(self.url + path, headers=headers), timeout=10
            ) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            if self.centre is not None and not self.centre.alive:
                raise DemoFailed(f"{what}: the centre exited\n{self.centre.log_tail()}")
            time.sleep(0.2)
        raise DemoFailed(what)

    # -- commands ---------------------------------------------------------------------------------

    def _central(self, *args: str) -> str:
        config = self.folder / "centre" / "central.toml"
        return _run(python_module("central.cli", "--config", str(config), *args), f"yizhan-central {args[0]}")

    def _yizhan(self, station_id: str, *args: str) -> str:
        config = self.folder / station_id / "yizhan.toml"
        return _run(
            python_module("edge.cli", "--config", str(config), *args), f"yizhan {args[0]} on {station_id}"
        )


def _run(argv: list[str], what: str) -> str:
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=child_env(), check=False)
    if done.returncode != 0:
        raise DemoFailed(f"{what} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def _secret(path: Path, value: str) -> None:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run(args: Any) -> int:
    """`python -m demo`: the fleet when mosquitto is here, else the station alone (and why)."""

    def say(text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        sys.stdout.write(f"{stamp} {text}\n")
        sys.stdout.flush()

    mosquitto = find_mosquitto(args.broker)
    if mosquitto is None:
        say(
            "mosquitto was not found, so one station runs alone; to see the whole fleet (centre, broker, "
            "two stations, dashboard) install it (apt-get install mosquitto) and run make demo again"
        )
        from edge.cli import main as station_main

        return station_main(["demo"])
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="yizhan-fleet-"))
    if any(folder.iterdir()) if folder.exists() else False:
        say(f"{folder} is not empty: give an empty or new folder")
        return 2
    fleet = Fleet(folder, say, mosquitto, getattr(args, "web_port", None) or WEB_PORT)
    say(f"yizhan fleet demo: a centre, a broker ({mosquitto}) and two stations, all under {folder}")
    try:
        say("-- setting up: broker with TLS and one login per station, centre, stations pinned to its key")
        fleet.setup()
        fleet.start()
        say(f"-- the dashboard: {fleet.url}/dashboard/   user admin, password {fleet.admin_password}")
        ok = fleet.story(args.timeout)
        say(
            "-- the story ran: "
            + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in fleet.outcomes.items())
        )
        if args.until_done:
            return 0 if ok else 1
        say(f"-- still running: {fleet.url}/dashboard/ (admin / {fleet.admin_password}); Ctrl-C stops it")
        while True:
            fleet.follow()
            time.sleep(1.0)
    except DemoFailed as exc:
        say(f"the demo stopped: {exc}")
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        fleet.stop()
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
