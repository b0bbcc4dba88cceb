"""The phone benchmarks run (their figures are in docs/BENCHMARKS.md; nothing here judges speed)."""

from __future__ import annotations

from bench import phone_pass


def test_the_pass_reach_bench_runs() -> None:
    report = phone_pass.run()
    assert {r["lens_deg"] for r in report["results"]} == set(phone_pass.LENSES_DEG)
    assert all(r["read_mm"] for r in report["results"])  # every rendering reads from up close
    assert "bench.phone_pass" in phone_pass.markdown(report)
