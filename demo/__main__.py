"""`python -m demo` (what `make demo` runs): see demo/__init__.py."""

from __future__ import annotations

import argparse
import sys

from demo.fleet import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--dir", help="where everything lives (default: a fresh temporary folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) at the end")
    parser.add_argument("--broker", help="the mosquitto binary (default: found on PATH or in /usr/sbin)")
    parser.add_argument(
        "--until-done", action="store_true", help="exit after the story: 0 if every step happened, 1 if not"
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds each step of the story may take"
    )
    parser.add_argument(
        "--web-port", type=int, default=None, help="the dashboard's port (default 8090; a free one if taken)"
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
