"""Retrying a store call that SQLite refused because another connection committed meanwhile.

`Station`'s member writes read first and then write in one deferred transaction. In WAL mode such a
transaction cannot become the writer once another connection (the decide loop recording an event,
the sync thread) has committed after its read began: SQLite answers "database is locked" at once,
without waiting for the busy timeout. Nothing was written (the transaction is rolled back), so
running the whole call again is safe; after a few tries the caller gets a 503 to retry later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 4


def database_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def retry_locked(call: Callable[[], T], *, what: str, attempts: int = ATTEMPTS) -> T:
    """`call()`, run again (up to `attempts` times in all) when SQLite reported the lock conflict."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except OperationalError as exc:
            if not database_locked(exc) or attempt == attempts:
                raise
            log.info("store busy, retrying", extra={"fields": {"what": what, "attempt": attempt}})
            time.sleep(0.02 * attempt)
    raise AssertionError("unreachable")
