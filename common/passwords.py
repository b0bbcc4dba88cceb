"""Passwords: argon2id hashes, generated secrets, the rules for names and chosen passwords.

Used by the station's installer accounts (a JSON file) and the centre's staff accounts (a table):
both store only argon2id hashes, print generated secrets once, and verify through `Passwords`, which
makes an unknown account cost the same argon2 work as a known one (no probing for user names),
bounds how many verifications run at once (64 MiB each: a login flood cannot exhaust memory), and
says when a hash made with older parameters should be upgraded.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
PASSWORD_MIN = 10
PASSWORD_MAX = 256
#: Letters and digits one can read off a screen and type on a phone without confusing 0/O or
#: 1/l/I: 31 symbols, 16 of them are ~79 bits.
SECRET_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
SECRET_LENGTH = 16
VERIFY_SLOTS = 2


class CredentialError(ValueError):
    """A refused account operation: bad user name, weak password, account exists or is missing.

    The message is meant for the person at the keyboard (HTTP 422, CLI exit 2).
    """


def normalise_username(value: str) -> str:
    """Lower-case, trimmed; CredentialError unless 1-32 of a-z 0-9 . _ - starting with a letter/digit."""
    name = value.strip().lower() if isinstance(value, str) else ""
    if not USERNAME_RE.fullmatch(name):
        raise CredentialError(
            "a user name is 1 to 32 characters: a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        )
    return name


def generate_secret() -> str:
    """A random password in groups of four, e.g. `k7mq-2xfa-9pwe-h3tn` (shown to its owner once)."""
    raw = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, SECRET_LENGTH, 4))


def check_new_password(password: str, username: str) -> None:
    """CredentialError when a chosen password is too short, too long or the user name itself."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise CredentialError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if password.strip().lower() == username:
        raise CredentialError("the password must not be the user name")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a password check found: `ok`; `needs_rehash` (upgrade it now); `unusable` (bad hash)."""

    ok: bool
    needs_rehash: bool = False
    unusable: bool = False


class Passwords:
    """argon2id hashing and verification with a dummy hash for unknown accounts. Thread-safe."""

    def __init__(self, hasher: PasswordHasher | None = None, *, slots: int = VERIFY_SLOTS) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = threading.BoundedSemaphore(slots)
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> Verdict:
        """Check `password` against `stored_hash` (None: no such account, same cost, never ok)."""
        if not isinstance(password, str) or len(password) > PASSWORD_MAX:
            return Verdict(ok=False)
        with self._slots:
            if stored_hash is None:
                try:
                    self._hasher.verify(self._dummy(), password)
                except VerificationError:
                    pass
                return Verdict(ok=False)
            try:
                self._hasher.verify(stored_hash, password)
            except VerifyMismatchError:
                return Verdict(ok=False)
            except (VerificationError, InvalidHashError):
                return Verdict(ok=False, unusable=True)
        return Verdict(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash))

    def _dummy(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
            return self._dummy_hash
