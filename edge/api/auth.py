"""Installer accounts, login sessions, and the brakes on guessing passwords.

Accounts live in `<data_dir>/installers.json` (mode 0600, replaced atomically, argon2id hashes only):
a JSON file rather than a table because `yizhan installer add` must work while the daemon runs and
the file is the one thing an installer may need to inspect or delete by hand on a broken box. Reads
need no lock (the file is only ever replaced by a rename); read-modify-write cycles from the CLI and
the API hold an flock on a sibling `.lock` file, so a password change and an `installer add` cannot
lose each other's write.

Sessions are in memory only: a restart logs everyone out, and no session secret ever touches the SD
card. A session token is a bearer credential (the `Authorization: Bearer` header, or the HttpOnly
cookie the page uses); the store keeps only its SHA-256, so a memory dump or a log line cannot be
replayed.

Guessing is slowed per account: every failure doubles the wait before the next attempt
(`login_backoff_s`), and `login_max_failures` failures in a row lock the account for
`login_lockout_s`. A client address is locked too after four times as many failures across
accounts, so several installers behind one NAT do not lock each other out while a password sprayer
still is. A locked account is refused without checking the password at all, so a lockout also caps
the CPU an attacker can burn on argon2.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge.api.config import ApiConfig

log = logging.getLogger(__name__)

INSTALLERS_FILE = "installers.json"
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
PASSWORD_MIN = 10
PASSWORD_MAX = 256
#: Letters and digits an installer can read off a screen and type on a phone without confusing
#: 0/O or 1/l/I: 31 symbols, 16 of them are ~79 bits.
SECRET_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
SECRET_LENGTH = 16
MAX_BACKOFF_S = 60.0
ADDRESS_FAILURE_FACTOR = 4
_FILE_VERSION = 1
_VERIFY_SLOTS = 2  # argon2 verifications at once (64 MiB each): a login flood cannot exhaust RAM


class AuthError(Exception):
    """Base of this module's errors; the message is meant for the installer."""


class InstallerError(AuthError, ValueError):
    """A refused account operation: bad user name, account exists or is missing, weak password."""


class InstallerFileError(AuthError, RuntimeError):
    """The accounts file cannot be read or written (corrupted, permissions, disk)."""


class LoginRefused(AuthError):
    """A login (or password check) that did not succeed; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int, code: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


def normalise_username(value: str) -> str:
    """Lower-case, trimmed; InstallerError unless 1-32 of a-z 0-9 . _ - starting with a letter/digit."""
    name = value.strip().lower() if isinstance(value, str) else ""
    if not USERNAME_RE.fullmatch(name):
        raise InstallerError(
            "a user name is 1 to 32 characters: a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        )
    return name


def generate_secret() -> str:
    """A random password in groups of four, e.g. `k7mq-2xfa-9pwe-h3tn` (shown to the installer once)."""
    raw = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, SECRET_LENGTH, 4))


def check_new_password(password: str, username: str) -> None:
    """InstallerError when a chosen password is too short, too long or the user name itself."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InstallerError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if password.strip().lower() == username:
        raise InstallerError("the password must not be the user name")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- accounts -----------------------------------------------------------------------------------------


class InstallerStore:
    """Installer accounts in one JSON file; safe across threads and across processes (CLI + daemon)."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._hasher = hasher or PasswordHasher()
        self._verify_slots = threading.BoundedSemaphore(_VERIFY_SLOTS)
        self._thread_lock = threading.Lock()
        self._dummy_hash: str | None = None
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
        digest = self._hasher.hash(secret)
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
        digest = self._hasher.hash(password)
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
        if not isinstance(password, str) or len(password) > PASSWORD_MAX:
            return False
        try:
            name = normalise_username(username)
        except InstallerError:
            name = ""
        entry = self._read().get(name) if name else None
        with self._verify_slots:
            if entry is None:
                try:
                    self._hasher.verify(self._dummy(), password)
                except VerificationError:
                    pass
                return False
            try:
                self._hasher.verify(entry["hash"], password)
            except VerifyMismatchError:
                return False
            except (VerificationError, InvalidHashError):
                log.error("installer hash unusable", extra={"fields": {"username": name}})
                return False
        if self._hasher.check_needs_rehash(entry["hash"]):
            self._rehash(name, password)
        return True

    def _rehash(self, name: str, password: str) -> None:
        """Upgrade a hash made with older argon2 parameters (best effort, on a successful login)."""
        try:
            digest = self._hasher.hash(password)
            with self._locked():
                accounts = self._read()
                if name in accounts:
                    accounts[name] = {**accounts[name], "hash": digest}
                    self._write(accounts)
        except InstallerFileError:
            log.warning("installer hash not upgraded", extra={"fields": {"username": name}}, exc_info=True)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        return self._dummy_hash


# -- sessions -----------------------------------------------------------------------------------------


@dataclass
class Session:
    """One login. Times are `time.monotonic()` (a Pi's wall clock may jump when NTP arrives)."""

    key: str  # SHA-256 of the token: the token itself is never kept
    username: str
    csrf_token: str
    created: float
    last_seen: float


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Logins in memory, expired by age (`ttl_s`) and by idleness (`idle_s`). Thread-safe."""

    def __init__(
        self, *, ttl_s: float, idle_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, username: str) -> tuple[str, Session]:
        """A new session; returns (token, session). The token is shown to the client only."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(_token_key(token), username, secrets.token_urlsafe(24), now, now)
        with self._lock:
            self._expire(now)
            self._sessions[session.key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session for a token (and mark it used), or None."""
        if not token or len(token) > 256:
            return None
        key = _token_key(token)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def revoke(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.key, None)

    def revoke_user(self, username: str, *, keep: Session | None = None) -> int:
        """End every session of `username` except `keep` (after a password change)."""
        with self._lock:
            doomed = [
                k
                for k, s in self._sessions.items()
                if s.username == username and (keep is None or k != keep.key)
            ]
            for key in doomed:
                del self._sessions[key]
        return len(doomed)

    def expires_in(self, session: Session) -> float:
        """Seconds until the session ends if it stays idle."""
        now = self._clock()
        return max(0.0, min(session.created + self.ttl_s, session.last_seen + self.idle_s) - now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.created >= self.ttl_s or now - session.last_seen >= self.idle_s

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


# -- throttling ---------------------------------------------------------------------------------------


@dataclass
class _Attempts:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


ThrottleKey = tuple[Literal["account", "address"], str]


@dataclass
class LoginThrottle:
    """Exponential back-off per account, lockout per account and per client address. Thread-safe.

    Addresses get no back-off: installers behind one NAT would slow each other down for every
    typo, while the address lockout (four times the account limit) is what stops spraying.
    """

    max_failures: int
    lockout_s: float
    backoff_s: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000
    _entries: OrderedDict[ThrottleKey, _Attempts] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def limit(self, key: ThrottleKey) -> int:
        return self.max_failures * (ADDRESS_FAILURE_FACTOR if key[0] == "address" else 1)

    def retry_after(self, keys: list[ThrottleKey]) -> tuple[float, str] | None:
        """(seconds to wait, "locked_out" or "slow_down") if any key must wait, else None."""
        now = self.clock()
        worst: tuple[float, str] | None = None
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    continue
                if entry.locked_until > now:
                    wait, code = entry.locked_until - now, "locked_out"
                elif entry.failures and self.backoff_s > 0 and key[0] == "account":
                    delay = min(self.backoff_s * 2 ** (entry.failures - 1), MAX_BACKOFF_S)
                    wait, code = entry.last_failure + delay - now, "slow_down"
                else:
                    continue
                if wait > 0 and (worst is None or wait > worst[0]):
                    worst = (wait, code)
        return worst

    def failure(self, key: ThrottleKey) -> bool:
        """Count a failure; True when it starts a lockout."""
        now = self.clock()
        with self._lock:
            entry = self._entries.pop(key, None) or _Attempts()
            if entry.failures and now - entry.last_failure > self.lockout_s:
                entry = _Attempts()  # a quiet period forgives earlier typos
            entry.failures += 1
            entry.last_failure = now
            locked = entry.failures >= self.limit(key)
            if locked:
                entry.locked_until = now + self.lockout_s
                entry.failures = 0
            self._entries[key] = entry
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        return locked

    def success(self, key: ThrottleKey) -> None:
        with self._lock:
            self._entries.pop(key, None)


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
        self.sessions = SessionStore(
            ttl_s=settings.session_ttl_s,
            idle_s=settings.session_idle_s,
            max_sessions=settings.max_sessions,
            clock=clock,
        )
        self.throttle = LoginThrottle(
            max_failures=settings.login_max_failures,
            lockout_s=settings.login_lockout_s,
            backoff_s=settings.login_backoff_s,
            clock=clock,
        )
        self._on_lockout = on_lockout

    def check_password(self, username: str, password: str, client: str) -> str:
        """The normalised user name if the password is right; LoginRefused otherwise (throttled)."""
        name = username.strip().lower()[:64] if isinstance(username, str) else ""
        keys: list[ThrottleKey] = [("account", name), ("address", client)]
        waiting = self.throttle.retry_after(keys)
        if waiting is not None:
            wait, code = waiting
            message = (
                f"too many failed logins: locked, try again in {wait:.0f} s"
                if code == "locked_out"
                else f"wait {wait:.1f} s before trying again"
            )
            raise LoginRefused(message, status=429, code=code, retry_after_s=wait)
        try:
            ok = self.installers.verify(name, password)
        except InstallerFileError as exc:
            log.error("installer accounts unreadable", extra={"fields": {"error": str(exc)}})
            raise LoginRefused(
                "installer accounts cannot be read on this station", status=503, code="accounts_unreadable"
            ) from None
        if not ok:
            for key in keys:
                if self.throttle.failure(key):
                    log.warning(
                        "login locked out",
                        extra={"fields": {"event": "installer_lockout", "scope": key[0], "key": key[1]}},
                    )
                    if self._on_lockout is not None:
                        self._on_lockout(key[0], key[1])
            log.info(
                "login failed",
                extra={"fields": {"event": "login_failed", "username": name, "client": client}},
            )
            raise LoginRefused("wrong user name or password", status=401, code="bad_credentials")
        self.throttle.success(("account", name))
        return name

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

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(session.csrf_token, presented)
