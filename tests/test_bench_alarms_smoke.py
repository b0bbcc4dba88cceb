"""bench/alarms.py runs end to end and keeps its output shape (tiny counts: no number here is a
measurement; docs/BENCHMARKS.md has those)."""

from __future__ import annotations

from bench import alarms


def test_the_alarm_benchmark_runs_and_reports_its_shape() -> None:
    report = alarms.run(events=3, stations=20, database_url=None)
    assert report["event_to_alarm_on_bus"]["n"] == 3
    assert report["webhooks_received"] == 3
    assert report["sweep_quiet_fleet"]["n"] == 7
    text = alarms.markdown(report, "python -m bench.alarms")
    assert text.startswith(alarms.START) and text.rstrip().endswith(alarms.END)
