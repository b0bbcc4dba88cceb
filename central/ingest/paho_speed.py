"""paho's MQTT v5 `Properties`, built without re-creating its constant tables for every packet.

paho-mqtt 2.x makes a `Properties` object for every v5 PUBLISH it receives and every PUBACK it
decodes, and each one rebuilds two constant dictionaries (27 property names, 27 type entries,
calling `list.index` for each) in `__init__`, then `unpack` calls `clear()`, which does 27 string
replacements and `hasattr` calls on the empty object. Measured: ~45 µs of the ~60 µs paho spends
decoding one event's PUBLISH at the centre, and the same again for every PUBACK and `down/ack` at
a station: at a few thousand messages a second, the largest single cost of the ingest process
(docs/SCALING.md).

`install()` keeps paho's class and every method's behaviour, and changes two things only: a new
object *shares* the tables one original `__init__` built (paho reads them and never writes them:
`tests/test_central_ingest_batching.py` checks that packing and unpacking every property gives
what the original class gives), and `clear()` looks the names up in the instance's `__dict__`
(what `hasattr` finds there, as the class defines none of the property names). Installed once per
process by the centre's MQTT clients (`central.ingest.link`) and the fleet benchmark's stations;
a paho whose `Properties` does not look as expected is left alone.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

_TABLES = ("types", "names", "properties")
_lock = threading.Lock()
_installed = False


def install() -> bool:
    """Make `Properties()` cheap (idempotent); False when paho's class is not the one expected."""
    global _installed
    with _lock:
        if _installed:
            return True
        template = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        shared = {name: getattr(template, name, None) for name in _TABLES}
        if not (
            isinstance(shared["types"], list)
            and isinstance(shared["names"], dict)
            and isinstance(shared["properties"], dict)
            and callable(getattr(Properties, "clear", None))
        ):
            log.warning("paho's Properties is not the expected shape; not sped up")
            return False
        compressed = tuple(name.replace(" ", "") for name in shared["names"])
        if any(hasattr(Properties, name) for name in compressed):
            log.warning("paho's Properties defines a property name on the class; not sped up")
            return False

        def __init__(self: Any, packetType: int) -> None:  # noqa: N807, N803 - paho's signature
            object.__setattr__(self, "packetType", packetType)
            for name in _TABLES:
                object.__setattr__(self, name, shared[name])

        def clear(self: Any) -> None:
            values = self.__dict__
            for name in compressed:
                if name in values:
                    delattr(self, name)

        Properties.__init__ = __init__  # type: ignore[method-assign]
        Properties.clear = clear  # type: ignore[method-assign]
        _installed = True
        return True
