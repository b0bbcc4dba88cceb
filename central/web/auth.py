"""Staff logins: the accounts are rows in `staff`; hashing, sessions and throttling are `common`'s.

Sessions live in memory (a restart logs everyone out; with several web processes a login is valid
on the process that made it, so a load balancer needs sticky sessions until sessions move to the
database). The session holds the user name only: role and district are read from the database on
every request (`deps.current_staff`), so demoting or disabling an account takes effect at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from central.config import WebConfig
from central.store import audit
from central.store import staff as staff_store
from common.db_types import utc_now
from common.login import LoginGuard
from common.passwords import Passwords
from common.sessions import Session, SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    """Who made a request: the account as it is in the database now, and the session used."""

    id: int
    username: str
    role: str
    district_id: str | None
    session: Session

    @property
    def district_scope(self) -> list[str] | None:
        """The districts this account sees (None: all of them)."""
        return None if self.district_id is None else [self.district_id]

    @property
    def can_act(self) -> bool:
        """Viewers look; admins and district staff may change things."""
        return self.role in ("admin", "district")

    @property
    def actor(self) -> str:
        return f"staff:{self.username}"


class StaffAuth:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        settings: WebConfig,
        *,
        passwords: Passwords | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = sessions
        self.passwords = passwords or Passwords()
        self.sessions: SessionStore = settings.session_store(clock)
        self.throttle = settings.login_throttle(clock)
        self.guard = LoginGuard(self.throttle, subject="staff", on_lockout=self._lockout)

    def login(self, username: str, password: str, client: str) -> tuple[str, Session]:
        """(token, session) for a right password; `common.login.LoginRefused` otherwise (throttled)."""
        name = self.check_password(username, password, client)
        token, session = self.sessions.create(name)
        log.info(
            "staff login", extra={"fields": {"event": "staff_login", "username": name, "client": client}}
        )
        return token, session

    def check_password(
        self, username: str, password: str, client: str, *, db: DbSession | None = None
    ) -> str:
        """The account's name if the password is right (an active account); LoginRefused otherwise.

        Without `db` the account is read and the login recorded in short transactions of their own,
        none held while argon2 runs (~50 ms). A request that already holds a transaction passes it
        as `db` (on SQLite a second writer inside the same request would wait for itself).
        """

        def verify(name: str) -> bool:
            with self._session(db) as session:
                account = staff_store.get_by_username(session, username=name) if name else None
                stored = account.password_hash if account is not None and account.active else None
            verdict = self.passwords.verify(stored, password)
            if verdict.unusable:
                log.error("staff password hash unusable", extra={"fields": {"username": name}})
            if verdict.ok:
                with self._session(db, write=True) as session:
                    self._record_check(session, name, password if verdict.needs_rehash else None, client)
            return verdict.ok

        return self.guard.check(username, client, verify)

    @contextmanager
    def _session(self, db: DbSession | None, *, write: bool = False) -> Iterator[DbSession]:
        if db is not None:
            yield db
        elif write:
            with self._db.begin() as session:
                yield session
        else:
            with self._db() as session:
                yield session

    def _record_check(self, db: DbSession, name: str, rehash_password: str | None, client: str) -> None:
        account = staff_store.get_by_username(db, username=name)
        if account is None:
            return
        if rehash_password is not None:
            account.password_hash = self.passwords.hash(rehash_password)
        account.last_login_at = utc_now()
        audit.record(
            db, actor=f"staff:{name}", action="password_ok", client=client, district_id=account.district_id
        )

    def _lockout(self, scope: str, key: str) -> None:
        with self._db.begin() as db:
            audit.record(db, actor="system", action="login_lockout", target_type=scope, target_id=key[:64])
