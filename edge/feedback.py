"""Which signal the worker at the door gets for a recorded decision (pure; `door.feedback` plays it).

  granted    an entry (face, pass, two-factor, a remote opening) or an exit through a reader
  show_pass  the face did not open: not recognised (`unknown_face`) or not sure enough, so the door
             asks for the pass (`show_pass`, the grey zone; members who require the pass). A pass
             always works: a face that is not let in is never refused silently
  locked     refused because this face, member or pass is locked out (or a lockout just started)
  refused    every other refusal (expired or revoked pass, suspended member, closed, ...)

The exit button, door alarms and repeats get no signal: the person is leaving, or nobody is
waiting for an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from door.config import SIGNALS

_CREDENTIALS = frozenset({"face", "qr", "qr_face"})
#: Refusals of a face alone: the worker is asked for the pass, never just refused.
_ASK_FOR_PASS = frozenset({"unknown_face", "show_pass"})


def signal_for(event: Mapping[str, Any]) -> str | None:
    """The signal for a recorded event (its JSON), or None."""
    kind, method, reason = event.get("kind"), event.get("method"), event.get("reason")
    signal: str | None = None
    if kind == "entry" and (method in _CREDENTIALS or method == "remote"):
        signal = "granted"
    elif kind == "exit" and method in _CREDENTIALS:
        signal = "granted"
    elif kind == "lockout" or (kind == "refused" and reason == "lockout"):
        signal = "locked"
    elif kind == "refused" and reason in _ASK_FOR_PASS:
        signal = "show_pass"
    elif kind == "refused":
        signal = "refused"
    assert signal is None or signal in SIGNALS
    return signal
