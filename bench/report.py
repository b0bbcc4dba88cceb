"""Writing one benchmark's section of docs/BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

HEADER = "# Benchmarks\n\nMeasured numbers, each section written by the benchmark named in it.\n\n"


def write_section(path: Path, section: str, start_mark: str, end_mark: str) -> None:
    """Replace the text between `start_mark` and `end_mark` in `path` with `section` (which carries
    the marks itself), append it if the marks are absent, or start the file with a header."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = text.find(start_mark), text.find(end_mark)
    if start != -1 and end > start:
        new = text[:start] + section.rstrip("\n") + text[end + len(end_mark) :]
    elif text.strip():
        new = text.rstrip("\n") + "\n\n" + section
    else:
        new = HEADER + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new if new.endswith("\n") else new + "\n", encoding="utf-8")


def command_line(module: str, argv: Sequence[str]) -> str:
    """`python -m <module> ARGS` as typed from the repository root (the interpreter's path made
    relative when it lies inside the current folder, e.g. .venv/bin/python)."""
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(Path.cwd()))
    except ValueError:
        shown = exe.name
    return shlex.join([shown, "-m", module, *argv])
