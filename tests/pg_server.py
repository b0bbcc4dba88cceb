"""A real PostgreSQL for the centre's tests: initdb + pg_ctl on a free port in a temporary folder.

`start_postgres()` finds Debian's server binaries (/usr/lib/postgresql/<version>/bin, the newest),
creates a cluster with trust authentication for user `yz` on 127.0.0.1 only (and a Unix socket in
the folder), starts it with `fsync=off` (tests only: a crash of the test box loses nothing we
need), and `PgServer.stop()` ends it by the postmaster's PID. As root (CI) the cluster belongs to
the `postgres` user (`initdb` refuses root): the folder is chowned and the binaries run through
`runuser -u postgres --`.

When the binaries are missing the tests are skipped with the reason, except under CI (`CI` set),
where `.ci/run` installs them: there a missing server fails, so PostgreSQL is never skipped silently.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mqtt_broker import free_port

SERVER_GLOB = "/usr/lib/postgresql/*/bin"
USER = "yz"


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def postgres_bin_dir() -> Path:
    """The folder with initdb and pg_ctl; skip (locally) or fail (under CI) when there is none."""
    candidates = [d for d in glob.glob(SERVER_GLOB) if (Path(d) / "initdb").exists()]
    if candidates:
        return Path(max(candidates, key=_version_key))
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    message = (
        "PostgreSQL server binaries not found (apt-get install -y --no-install-recommends postgresql); "
        "the centre's tests on PostgreSQL need them"
    )
    if os.environ.get("CI"):
        pytest.fail(message + " (CI installs them: .ci/run)")
    pytest.skip(message)


class PortTaken(RuntimeError):
    """The postmaster could not bind its port: someone else took it first."""


@dataclass
class PgServer:
    bin_dir: Path
    folder: Path
    port: int
    as_postgres: bool
    pid: int | None = None
    _databases: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        if self.as_postgres:
            subprocess.run(["chown", "-R", "postgres:", str(self.folder)], check=True)
        done = self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", USER, "-E", "UTF8",
                         "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        # Tests run in parallel processes (pytest-xdist), each with its own server: another process
        # can take the free port between our probe and the postmaster's bind. Then try another.
        for _attempt in range(4):
            try:
                self._start_postmaster()
                return
            except PortTaken:
                self.port = free_port()
        self._start_postmaster()

    def _start_postmaster(self) -> None:
        log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        done = self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_path), "-w",
                         "-t", "60", "start")  # fmt: skip
        if done.returncode != 0:
            log = self.log_text()[log_size:]
            if "could not bind" in log or "already in use" in log:
                raise PortTaken(log[-1000:])
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-1000:]} {log[-2000:]}")
        self.pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        return ""

    def create_database(self, template: str | None = None) -> str:
        """A new, empty (or `template`-copied) database; returns its name."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True
        ) as c:
            suffix = f" TEMPLATE {template}" if template else ""
            c.execute(f"CREATE DATABASE {name}{suffix}")
        self._databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a test's database when the test is done (FORCE: a child process may still hold a
        connection): the cluster stays small, so copies and the final stop stay quick."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True
        ) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self._databases:
            self._databases.remove(name)

    def stop(self) -> None:
        """Immediate shutdown through pg_ctl, then by PID if it is still there; the folder is removed.

        Immediate: the folder is deleted next, so the shutdown checkpoint a fast stop writes (every
        test database of the session, hundreds of them) would only be thrown away."""
        pid, self.pid = self.pid, None
        if pid is not None:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30", "stop")
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_postgres() -> PgServer:
    bin_dir = postgres_bin_dir()
    as_postgres = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="yz-pg-"))
    server = PgServer(bin_dir, folder, free_port(), as_postgres)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
