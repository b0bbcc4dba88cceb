"""Installer accounts, login sessions, and the brakes on guessing passwords.

Accounts live in `<data_dir>/installers.json` (mode 0600, replaced atomically, argon2id hashes only):
a JSON file rather than a table because `yizhan installer add` must work while the daemon runs and
the file is the one thing an installer may need to inspect or delete by hand on a broken box. Reads
need no lock (the file is only ever replaced by a rename); read-modify-write cycles from the CLI and
the API hold an flock on a sibling `.lock` file, so a password change and an `installer add` cannot
lose each other's write.

The pieces the centre's staff logins share live in `common`: argon2id hashing and password rules
(`common.passwords`), in-memory sessions with hashed tokens and the CSRF check (`common.sessions`),
back-off and lockout per account and per address (`common.login`, set by `login_max_failures`,
`login_backoff_s`, `login_lockout_s`). What stays here is what only a station has: the accounts
file and the service the local API's routes use.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher

from common.login import LoginGuard, LoginRefused
from common.passwords import (
    CredentialError,
    Passwords,
    check_new_password,
    generate_secret,
    normalise_username,
)
from common.sessions import Session, csrf_ok
from edge.api.config import ApiConfig

log = logging.getLogger(__name__)

INSTALLERS_FILE = "installers.json"
_FILE_VERSION = 1

#: Refused account operations (bad user name, weak password, account exists or is missing) are the
#: shared `CredentialError`, so what `common.passwords` raises is caught under the station's name.
InstallerError = CredentialError


class AuthError(Exception):
    """Base of this module's own errors; the message is meant for the installer."""


class InstallerFileError(AuthError, RuntimeError):
    """The accounts file cannot be read or written (corrupted, permissions, disk)."""


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- accounts -----------------------------------------------------------------------------------------


class InstallerStore:
    """Installer accounts in one JSON file; safe across threads and across processes (CLI + daemon)."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._passwords = Passwords(hasher)
        self._thread_lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path, hasher: PasswordHasher | None = None) -> InstallerStore:
        return cls(Path(data_dir) / INSTALLERS_FILE, hasher)

    # -- file access ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive for read-modify-write, within this process and against `yizhan installer`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _read(self) -> dict[str, dict[str, Any]]:
        """The accounts; parsed again only when the file was replaced (every request checks it)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InstallerFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._cache
        if cached is not None and cached[0] == stamp:
            return dict(cached[1])
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InstallerFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InstallerFileError(f"{self.path} is not valid JSON (edit or delete it)") from None
        accounts = data.get("installers") if isinstance(data, dict) else None
        if not isinstance(accounts, dict) or not all(
            isinstance(name, str) and isinstance(entry, dict) and isinstance(entry.get("hash"), str)
            for name, entry in accounts.items()
        ):
            raise InstallerFileError(f"{self.path} does not hold installer accounts (edit or delete it)")
        self._cache = (stamp, accounts)
        return dict(accounts)

    def _write(self, accounts: dict[str, dict[str, Any]]) -> None:
        """Temporary file (0600) + fsync + rename + directory fsync: never a half-written file."""
        payload = json.dumps(
            {"version": _FILE_VERSION, "installers": accounts}, ensure_ascii=False, indent=2, sort_keys=True
        ).encode("utf-8")
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover temporary file
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise InstallerFileError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    # -- account operations --------------------------------------------------------------------

    def add(self, username: str, *, replace: bool = False) -> str:
        """Create an account (or, with `replace`, give an existing one a new password); the secret.

        The secret is returned once and stored only as an argon2id hash.
        """
        name = normalise_username(username)
        secret = generate_secret()
        digest = self._passwords.hash(secret)
        with self._locked():
            accounts = self._read()
            existing = accounts.get(name)
            if existing is not None and not replace:
                raise InstallerError(f"installer {name!r} already exists (use --reset for a new password)")
            now = _now_iso()
            accounts[name] = {
                "hash": digest,
                "created_at": existing.get("created_at", now) if existing else now,
                "password_changed_at": now,
            }
            self._write(accounts)
        log.info(
            "installer account saved",
            extra={
                "fields": {"event": "installer_saved", "username": name, "replaced": existing is not None}
            },
        )
        return secret

    def set_password(self, username: str, password: str) -> None:
        name = normalise_username(username)
        check_new_password(password, name)
        digest = self._passwords.hash(password)
        with self._locked():
            accounts = self._read()
            if name not in accounts:
                raise InstallerError(f"no installer {name!r}")
            accounts[name] = {**accounts[name], "hash": digest, "password_changed_at": _now_iso()}
            self._write(accounts)
        log.info(
            "installer password changed", extra={"fields": {"event": "installer_password", "username": name}}
        )

    def remove(self, username: str) -> bool:
        name = normalise_username(username)
        with self._locked():
            accounts = self._read()
            if accounts.pop(name, None) is None:
                return False
            self._write(accounts)
        log.info(
            "installer account removed", extra={"fields": {"event": "installer_removed", "username": name}}
        )
        return True

    def list(self) -> list[dict[str, Any]]:
        """Accounts without their hashes, sorted by name."""
        return [
            {"username": name, **{k: v for k, v in entry.items() if k != "hash"}}
            for name, entry in sorted(self._read().items())
        ]

    def exists(self, username: str) -> bool:
        try:
            return normalise_username(username) in self._read()
        except InstallerError:
            return False

    def verify(self, username: str, password: str) -> bool:
        """True if the password is right. Unknown users cost the same argon2 work (no user probing)."""
        try:
            name = normalise_username(username)
        except InstallerError:
            name = ""
        entry = self._read().get(name) if name else None
        verdict = self._passwords.verify(entry["hash"] if entry is not None else None, password)
        if verdict.unusable:
            log.error("installer hash unusable", extra={"fields": {"username": name}})
        if verdict.needs_rehash:
            self._rehash(name, password)
        return verdict.ok

    def _rehash(self, name: str, password: str) -> None:
        """Upgrade a hash made with older argon2 parameters (best effort, on a successful login)."""
        try:
            digest = self._passwords.hash(password)
            with self._locked():
                accounts = self._read()
                if name in accounts:
                    accounts[name] = {**accounts[name], "hash": digest}
                    self._write(accounts)
        except InstallerFileError:
            log.warning("installer hash not upgraded", extra={"fields": {"username": name}}, exc_info=True)


# -- the service the routes use -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request and how they proved it."""

    username: str
    via: Literal["cookie", "bearer", "basic"]
    session: Session | None = None


class AuthService:
    """Logins, session look-ups and password checks, all through one throttle."""

    def __init__(
        self,
        installers: InstallerStore,
        settings: ApiConfig,
        *,
        on_lockout: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.installers = installers
        self.sessions = settings.session_store(clock)
        self.throttle = settings.login_throttle(clock)
        self.guard = LoginGuard(self.throttle, subject="installer", on_lockout=on_lockout)

    def check_password(self, username: str, password: str, client: str) -> str:
        """The normalised user name if the password is right; LoginRefused otherwise (throttled)."""

        def verify(name: str) -> bool:
            try:
                return self.installers.verify(name, password)
            except InstallerFileError as exc:
                log.error("installer accounts unreadable", extra={"fields": {"error": str(exc)}})
                raise LoginRefused(
                    "installer accounts cannot be read on this station",
                    status=503,
                    code="accounts_unreadable",
                ) from None

        return self.guard.check(username, client, verify)

    def login(self, username: str, password: str, client: str) -> tuple[str, Session]:
        name = self.check_password(username, password, client)
        token, session = self.sessions.create(name)
        log.info("login", extra={"fields": {"event": "login", "username": name, "client": client}})
        return token, session

    def session_for(self, token: str) -> Session | None:
        session = self.sessions.get(token)
        if session is None:
            return None
        try:
            known = self.installers.exists(session.username)
        except InstallerFileError:
            known = True  # an unreadable file blocks new logins (logged there), not work in progress
        if not known:
            self.sessions.revoke(session)  # the account was removed with `yizhan installer remove`
            return None
        return session

    def change_password(self, identity: Identity, current: str, new: str, client: str) -> None:
        self.check_password(identity.username, current, client)
        self.installers.set_password(identity.username, new)
        self.sessions.revoke_user(identity.username, keep=identity.session)

    def logout(self, identity: Identity) -> None:
        if identity.session is not None:
            self.sessions.revoke(identity.session)

    csrf_ok = staticmethod(csrf_ok)
