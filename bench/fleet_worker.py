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
                sent = message.data.get("details", {}).get("bench_sent")
                if isinstance(sent, float):
                    committed = message.published_mono + offset
                    lines.append(f"{sent:.6f} {committed:.6f} {time.time():.6f}\n")
            if lines:
                out.writelines(lines)
                out.flush()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
