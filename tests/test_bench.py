"""A tiny run of the benchmark (`python -m bench --quick`), so that it cannot rot.

Checks a well-formed report with every scenario and nothing lost or duplicated; never a
speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def _positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def test_quick_benchmark_reports_every_scenario(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "| figure" in done.stdout
    report = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latency.png").stat().st_size > 0
    assert set(report["servers"]) == {"ours", "floor", "bare"}
    for kind, scenarios in report["servers"].items():
        expected = {"throughput", "fanout", "memory"} | ({"history"} if kind == "ours" else set())
        assert expected <= set(scenarios), kind
        for name in expected:
            assert "error" not in scenarios[name], (kind, name, scenarios[name])

        throughput = scenarios["throughput"]
        steps = [throughput["fixed_load"], *throughput["steps"]]
        assert steps
        for step in steps:
            assert step["lost"] == 0 and step["duplicated"] == 0, (kind, step)
            assert step["out_of_order"] == 0 and step["id_mismatch"] == 0, (kind, step)
            assert _positive(step["delivered"]) and _positive(step["p99_ms"]), (kind, step)
        assert _positive(throughput["fixed_load"]["server_cpu_s"]) or \
            throughput["fixed_load"]["server_cpu_s"] == 0  # clock ticks are 10 ms

        fanout = scenarios["fanout"]
        assert fanout["steps"]
        for step in fanout["steps"]:
            assert "join_error" not in step, (kind, step)
            assert step["lost"] == 0 and step["duplicated"] == 0, (kind, step)
        assert _positive(fanout["largest_room"])

        memory = scenarios["memory"]
        assert memory["open_at_measure"] == memory["connections"] > 0
        assert _positive(memory["rss_after_kib"]) and _positive(memory["rss_before_kib"])
        # memory is measured after every socket has received the traffic
        assert memory["traffic"]["lost"] == 0, (kind, memory["traffic"])
        assert memory["traffic"]["delivered"] == (
            memory["connections"] * memory["messages_per_room"]), (kind, memory["traffic"])

    history = {k: v for k, v in report["servers"]["ours"]["history"].items() if k.isdecimal()}
    assert set(history) == {str(n) for n in report["settings"]["history_counts"]}
    for figures in history.values():
        assert _positive(figures["page_p50_ms"]) and _positive(figures["earlier_p50_ms"])

    assert report["machine"]["deflate_offered"] is True  # as browsers do, by default
    summary = report["summary"]
    for kind in ("ours", "floor", "bare"):
        assert _positive(summary[kind]["fanout_largest_room"])
        assert summary[kind]["memory_kib_per_connection"] is not None
