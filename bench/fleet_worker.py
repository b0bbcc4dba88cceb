"""One ingest process for `bench.fleet`: `yizhan-central ingest`, plus a live-feed listener.

    python -m bench.fleet_worker --config C --latency OUT

It is the production composition root (`CentralApp`: ingest workers, roster fan-out,
housekeeping) with one addition: a subscriber on the live bus, where the dashboard's feed reads,
writing for every stored event the station's publish time (the simulated stations put it in
`details.bench_sent`), the commit time (the bus notice is published right after the commit) and
the time the subscriber had it. SIGTERM stops it cleanly; SIGKILL is what the benchmark does to it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from central.app import CentralApp
from central.config import load_config
from common.logging_setup import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--latency", type=Path, required=True)
    args = parser.parse_args(argv)
    config, _ = load_config(args.config)
    configure_logging("WARNING", "json")
    app = CentralApp(config)
    app.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    offset = time.time() - time.monotonic()  # monotonic -> wall, for the bus notices' publish times
    subscription = app.live.subscribe({"event"}, maxlen=200_000)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with args.latency.open("a", encoding="utf-8") as out:
        while not stop.is_set():
            lines = []
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                message = subscription.get(timeout=0.1)
                if message is None:
                    continue
                now = time.time()  # a committed batch arrives at once: one clock reading for it
                for notice in [message, *subscription.drain()]:
                    sent = notice.data.get("details", {}).get("bench_sent")
                    if isinstance(sent, float):
                        committed = notice.published_mono + offset
                        lines.append(f"{sent:.6f} {committed:.6f} {now:.6f}\n")
            if lines:
                out.writelines(lines)
                out.flush()
    app.close()
    return 0


def _sample_stacks(path: str, stop: threading.Event) -> None:
    """A poor man's sampling profiler (bench work only): every 5 ms, the innermost frames of every
    thread, counted by thread name and (file, line, function); the top ones written at the end."""
    import collections
    import traceback

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    names = {t.ident: t.name for t in threading.enumerate()}
    samples = 0
    while not stop.wait(0.005):
        samples += 1
        for ident, frame in sys._current_frames().items():
            if ident not in names:
                names = {t.ident: t.name for t in threading.enumerate()}
            for entry in [
                e
                for e in traceback.extract_stack(frame)
                if "/central/" in e.filename or "fleet" in e.filename
            ][-4:] + traceback.extract_stack(frame)[-2:]:
                counts[
                    (names.get(ident, "?"), f"{Path(entry.filename).name}:{entry.lineno} {entry.name}")
                ] += 1
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"{samples} samples\n")
        for (thread, where), n in counts.most_common(150):
            out.write(f"{n:7d} {thread:20s} {where}\n")


if __name__ == "__main__":
    profile = os.environ.get("YZ_FLEET_PROFILE")  # a file prefix: sample the threads' stacks
    if profile:
        stopping = threading.Event()
        sampler = threading.Thread(
            target=_sample_stacks, args=(f"{profile}.{os.getpid()}", stopping), daemon=True
        )
        sampler.start()
        code = main()
        stopping.set()
        sampler.join(5)
        sys.exit(code)
    sys.exit(main())
