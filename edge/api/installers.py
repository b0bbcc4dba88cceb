"""`yizhan installer ...`: installer accounts from the station's own shell.

The first account cannot come from the page (nobody can log in yet), so it is made on the box,
which proves physical or SSH access. The password is generated, printed once and stored only as a
hash: there is nothing to recover later, only `--reset` to print a new one.

Each function returns the CLI exit code (0 done, 2 refused) and writes to the given streams, so the
CLI wires it in one line and tests read what an installer would see.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from edge.api.auth import InstallerError, InstallerFileError, InstallerStore
from edge.config import Config

EXIT_OK, EXIT_REFUSED = 0, 2


def _store(config: Config) -> InstallerStore:
    return InstallerStore.for_data_dir(config.storage.data_dir)


def add_installer_command(
    config: Config,
    username: str,
    *,
    reset: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Create installer `username` (or give it a new password with `reset`) and print the secret once."""
    out = out or sys.stdout
    err = err or sys.stderr
    store = _store(config)
    try:
        secret = store.add(username, replace=reset)
    except (InstallerError, InstallerFileError) as exc:
        err.write(f"yizhan installer add: {exc}\n")
        return EXIT_REFUSED
    name = username.strip().lower()
    action = "new password for" if reset else "created installer"
    out.write(
        f"{action} {name}\n"
        f"password: {secret}\n"
        "This password is shown only now: write it down or hand it over in person. "
        "It can be changed on the installer page after logging in.\n"
    )
    return EXIT_OK


def remove_installer_command(
    config: Config, username: str, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Delete an account; its open sessions end at their next request."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        removed = _store(config).remove(username)
    except (InstallerError, InstallerFileError) as exc:
        err.write(f"yizhan installer remove: {exc}\n")
        return EXIT_REFUSED
    if not removed:
        err.write(f"yizhan installer remove: no installer {username.strip().lower()!r}\n")
        return EXIT_REFUSED
    out.write(f"removed installer {username.strip().lower()}\n")
    return EXIT_OK


def list_installers_command(
    config: Config, *, as_json: bool = False, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """The accounts (never their hashes)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        accounts = _store(config).list()
    except InstallerFileError as exc:
        err.write(f"yizhan installer list: {exc}\n")
        return EXIT_REFUSED
    if as_json:
        out.write(json.dumps(accounts, ensure_ascii=False) + "\n")
    else:
        for entry in accounts:
            out.write(
                f"{entry['username']:<32} created {entry.get('created_at', '-')}  "
                f"password changed {entry.get('password_changed_at', '-')}\n"
            )
    return EXIT_OK


def installer_command(args: argparse.Namespace, config: Config) -> int:
    """`yizhan installer add|remove|list`, as a CLI handler (`args.installer_cmd` picks one)."""
    if args.installer_cmd == "add":
        return add_installer_command(config, args.username, reset=getattr(args, "reset", False))
    if args.installer_cmd == "remove":
        return remove_installer_command(config, args.username)
    return list_installers_command(config, as_json=getattr(args, "json", False))
