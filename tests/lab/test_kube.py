"""The cluster a scenario describes."""

from __future__ import annotations

from datetime import UTC, datetime


def test_scenario_log_lines_are_stamped_relative_to_the_drill_start():
    from irkit.lab.kube import build_cluster
    now = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
    cluster = build_cluster({"workloads": [{"name": "api-deployment", "container": "api", "pods": [
        {"count": 1, "state": "crashloop", "logs": "{ago:5s} INFO up\n", "previous_logs": "{ago:2m} panic\n"}]}]},
        "ns", now=now)
    texts = sorted(cluster.logs.values())
    assert texts == ["2026-11-28T02:58:00Z panic\n", "2026-11-28T02:59:55Z INFO up\n"]

