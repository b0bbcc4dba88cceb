"""`yizhan sync trust`: pin the centre's public signing key(s) on this station.

    yizhan sync trust KEY [--label L]   # KEY: a file (PEM / base64 lines) or the base64 itself
    yizhan sync trust --list [--json]
    yizhan sync trust --remove KID

Keys added here live in the station database beside those of `[mqtt] centre_key_file`; a running
daemon picks them up after its next roster commit or restart. Removing the last trusted key is
refused while the station has one (the centre's messages would all be refused); with none trusted
the station reads unsigned messages but refuses remote opening (docs/mqtt.md, "Signatures").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session, sessionmaker

from contract.signing import PublicKey
from sync import keys as centre_keys

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _keys_from(argument: str, label: str) -> list[PublicKey]:
    path = Path(argument)
    if path.is_file():
        return [PublicKey(k.kid, k.raw, label or k.label) for k in centre_keys.read_key_file(path)]
    return [PublicKey.from_b64(argument, label)]


def trust_command(
    sessions: sessionmaker[Session],
    key_file: Path | None,
    *,
    key: str | None,
    label: str = "",
    remove: str | None = None,
    list_keys: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        file_keys = centre_keys.read_key_file(key_file) if key_file is not None else []
        if key is not None:
            added = _keys_from(key, label)
            with sessions() as session, session.begin():
                for public in added:
                    centre_keys.trust(session, public, "cli")
            for public in added:
                out.write(f"trusted centre key {public.kid} {public.label}".rstrip() + "\n")
        elif remove is not None:
            with sessions() as session, session.begin():
                centre_keys.revoke(session, remove, file_keys)
            out.write(f"centre key {remove} is no longer trusted\n")
        elif not list_keys:
            err.write("yizhan sync trust: give a KEY, --remove KID or --list\n")
            return EXIT_USAGE
        with sessions() as session:
            entries = centre_keys.list_keys(session, file_keys)
    except (ValueError, OSError) as exc:
        err.write(f"yizhan sync trust: {exc}\n")
        return EXIT_FAIL
    if list_keys:
        rows = [
            {
                "kid": e.key.kid,
                "public_key": e.key.b64,
                "label": e.key.label,
                "source": e.source,
                "trusted": not e.revoked,
            }
            for e in entries
        ]
        if as_json:
            out.write(json.dumps(rows, ensure_ascii=False) + "\n")
        else:
            for row in rows:
                state = "trusted" if row["trusted"] else "revoked"
                out.write(
                    f"{row['kid']}  {state:8}  {row['source']:7}  {row['public_key']}  {row['label']}\n"
                )
            if not any(r["trusted"] for r in rows):
                out.write("no centre key is trusted: remote opening is refused\n")
    return EXIT_OK
