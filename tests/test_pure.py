"""Pure logic: the lock-graph builder and severity rules, tested on plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from irkit.pg import build_lock_graph
from irkit.severity import LEVELS, Signals, Thresholds, classify


def _edges(*pairs: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame([{"blocked_pid": w, "blocking_pid": b} for w, b in pairs])


def test_transitive_counts_follow_the_whole_tree():
    graph = build_lock_graph(_edges((2, 1), (3, 2), (4, 2), (5, 1), (7, 6)), pd.DataFrame({"pid": []}))
    assert list(zip(graph.roots.pid, graph.roots.blocked_count, graph.roots.direct_count)) == [(1, 4, 2), (6, 1, 1)]
    assert graph.cycles == ()


def test_a_waiter_blocked_by_two_sessions_is_counted_once():
    graph = build_lock_graph(_edges((3, 1), (3, 2), (4, 3)), pd.DataFrame({"pid": []}))
    assert dict(zip(graph.roots.pid, graph.roots.blocked_count)) == {1: 2, 2: 2}


def test_cycles_are_found_even_with_a_tail_waiting_on_them():
    graph = build_lock_graph(_edges((1, 2), (2, 3), (3, 1), (4, 1), (9, 8)), pd.DataFrame({"pid": []}))
    assert graph.cycles == ((1, 2, 3),)
    assert list(graph.roots.pid) == [8]


NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # a Friday, 3 a.m.


@pytest.mark.parametrize(("ratio", "level"), [
    (0.0, 4), (0.0499, 4), (0.05, 3), (0.07, 3), (0.10, 3), (0.1001, 2), (0.5, 2),
])
def test_error_ratio_boundaries_follow_the_playbook_wording(ratio: float, level: int):
    assert classify(Signals(error_ratio=ratio), detected_at=NOW).level == level


@pytest.mark.parametrize(("p95", "level"), [(4.9, 4), (5.0, 4), (5.01, 2)])
def test_latency_above_five_seconds_is_sev2(p95: float, level: int):
    assert classify(Signals(latency_p95_seconds=p95), detected_at=NOW).level == level


def test_highest_rule_wins_and_every_fired_rule_is_a_reason():
    result = classify(Signals(outage=True, error_ratio=0.12, latency_p95_seconds=6.0, performance_degraded=True),
                      detected_at=NOW)
    assert result.level == 1 and result.name == "SEV-1"
    assert len(result.reasons) == 4
    assert result.reasons[0].startswith("complete service outage")
    assert result.respond_by == NOW + timedelta(minutes=5)
    assert result.escalation == LEVELS[1].escalation


@pytest.mark.parametrize("signal", ["database_corruption", "security_breach", "payment_failure"])
def test_each_sev1_example_is_sev1(signal: str):
    assert classify(Signals(**{signal: True}), detected_at=NOW).level == 1


@pytest.mark.parametrize("signal", ["authentication_failures", "blockchain_connectivity_lost"])
def test_each_sev2_example_is_sev2(signal: str):
    assert classify(Signals(**{signal: True}), detected_at=NOW).level == 2


def test_sev3_from_degradation_alerts_and_features():
    assert classify(Signals(alerts_firing=("HighCPU",)), detected_at=NOW).level == 3
    assert classify(Signals(feature_failures=("wishlist",)), detected_at=NOW).level == 3
    result = classify(Signals(performance_degraded=True), detected_at=NOW)
    assert result.respond_by == NOW + timedelta(hours=1)


def test_nothing_fired_is_sev4_next_business_day_and_not_real():
    result = classify(Signals(error_ratio=0.01, latency_p95_seconds=0.3), detected_at=NOW)
    assert result.level == 4 and not result.real
    assert result.respond_by == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Friday -> Monday


def test_thresholds_come_from_the_caller():
    strict = Thresholds(error_ratio_high=0.02, error_ratio_moderate=0.01)
    assert classify(Signals(error_ratio=0.03), strict, detected_at=NOW).level == 2


def test_identical_logs_of_several_pods_are_shown_once_with_their_pods():
    from irkit.investigate import LogView, fold_logs
    panic = "INFO starting\npanic: assignment to entry in nil map\n"
    frame = pd.DataFrame([
        {"pod": "api-1", "container": "api", "previous": True, "text": panic, "deployment": "api"},
        {"pod": "api-2", "container": "api", "previous": True, "text": panic, "deployment": "api"},
        {"pod": "api-3", "container": "api", "previous": True, "text": "OOM\n", "deployment": "api"},
    ])
    folded = fold_logs(frame)
    assert folded["pods"].tolist() == [["api-1", "api-2"], ["api-3"]]
    shown = LogView(folded, "previous logs")._repr_mimebundle_()
    assert shown["text/plain"].count("panic: assignment") == 1  # whole, once
    assert "2 pod(s) api-1, api-2" in shown["text/plain"]
    assert "<pre>INFO starting\npanic: assignment" in shown["text/html"]
    assert fold_logs(frame.iloc[:0]).empty


def test_error_ratio_chart_marks_every_deployment_and_links_its_full_data():
    from irkit import charts
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame({"value": [0.01, 0.12], "service": ["backend", "backend"]},
                         index=[now - pd.Timedelta(minutes=10), now])
    deploys = pd.DataFrame([
        {"deployment": "backend-deployment", "revision": 2, "created": now - pd.Timedelta(minutes=8)},
        {"deployment": "frontend-deployment", "revision": 5, "created": now - pd.Timedelta(minutes=3)},
        {"deployment": "backend-deployment", "revision": 1, "created": now - pd.Timedelta(days=9)},
    ])
    chart = charts.error_ratio_chart(frame, deploys=deploys).with_data("data/phase1-error-ratio.csv")
    texts = [a.text for a in chart.figure.layout.annotations]
    assert "deploy backend r2" in texts and "deploy frontend r5" in texts
    # A deploy from days ago would stretch the axis and squeeze the incident into a sliver.
    assert "deploy backend r1" not in texts
    assert pd.Timestamp(chart.figure.layout.xaxis.range[0]) == frame.index[0]
    assert '<a href="data/phase1-error-ratio.csv">' in chart._repr_mimebundle_()["text/html"]


def test_downsampling_bounds_the_points_and_keeps_the_spike():
    from irkit import charts
    index = pd.date_range("2026-11-28", periods=20_000, freq="s", tz="UTC")
    values = [0.01] * 20_000
    values[12_345] = 0.9
    small = charts.downsample(pd.DataFrame({"value": values}, index=index), max_points=600)
    assert len(small) <= 600 and small["value"].max() == 0.9


def test_resolution_message_says_resolved_only_once_recovery_is_validated(tmp_path):
    import json

    from irkit.config import Config
    from irkit.incident import Incident
    from irkit.postmortem import resolution_message

    def phase(n: int, records: dict) -> None:
        (tmp_path / f"phase-{n}.json").write_text(json.dumps({"records": records}))

    phase(1, {"affected": ["backend"]})
    phase(2, {"findings": [{"kind": "error-spike", "subject": "backend", "detail": "12% fail"},
                           {"kind": "lock-root", "subject": "pid 7", "detail": "idle in transaction"}]})
    phase(3, {"mitigations": [{"command": "SELECT pg_terminate_backend(7);", "status": "applied"}]})
    phase(4, {"verdict": {"recovered": True, "failed": []}})
    message = resolution_message(Incident("INC-9", 5, tmp_path, Config()))
    assert message.startswith("Subject: [RESOLVED] lock-root on pid 7")  # the cause, not the symptom
    assert "has been resolved as of" in message and "Resolution: SELECT pg_terminate_backend(7);" in message
    phase(4, {"verdict": {"recovered": False, "failed": ["error ratio backend: 12%"]}})
    message = resolution_message(Incident("INC-9", 5, tmp_path, Config()))
    assert message.startswith("DRAFT, do not send: recovery is not validated (error ratio backend: 12%)")


def test_scenario_log_lines_are_stamped_relative_to_the_drill_start():
    from irkit.lab.kube import build_cluster
    now = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
    cluster = build_cluster({"workloads": [{"name": "api-deployment", "container": "api", "pods": [
        {"count": 1, "state": "crashloop", "logs": "{ago:5s} INFO up\n", "previous_logs": "{ago:2m} panic\n"}]}]},
        "ns", now=now)
    texts = sorted(cluster.logs.values())
    assert texts == ["2026-11-28T02:58:00Z panic\n", "2026-11-28T02:59:55Z INFO up\n"]


def test_no_finding_says_so_in_a_sentence(tmp_path):
    from irkit import investigate
    from irkit.config import Config
    from irkit.incident import Incident, Note
    shown = investigate.findings(Incident("INC-9", 2, tmp_path, Config()))
    assert isinstance(shown, Note) and shown.text.startswith("no finding")


# --- never fail open ----------------------------------------------------------------------------

def test_nothing_fired_but_a_signal_unmeasured_is_unknown_not_sev4():
    result = classify(Signals(error_ratio=None, latency_p95_seconds=0.3,
                              unmeasured=("error ratio: `http_requests_total` has no series",)), detected_at=NOW)
    assert result.level is None and result.name == "unknown" and result.real is None and not result.known
    assert result.unmeasured == ("error ratio: `http_requests_total` has no series",)
    assert result.respond_by == NOW + timedelta(minutes=15)  # looked at like a SEV-2 until measured
    assert "not an incident" not in result._repr_html_()


def test_a_fired_rule_stands_beside_what_was_not_measured():
    result = classify(Signals(error_ratio=0.12, unmeasured=("workload readiness: Kubernetes down",)), detected_at=NOW)
    assert result.name == "SEV-2" and result.real is True
    assert result.as_dict()["unmeasured"] == ["workload readiness: Kubernetes down"]
    assert "some signals were not measured" in result._repr_html_()


# --- copy-ready commands are quoted -----------------------------------------------------------------

def test_every_planned_command_is_quoted_for_the_shell():
    import shlex

    from irkit.findings import Finding, plan
    hostile = "x; touch /tmp/pwned #"
    steps = plan([Finding("crashloop", hostile, "d"), Finding("bad-revision", "api", "d", {"deployment": hostile}),
                  Finding("lock-root", "pid 42", "d", {"pid": 42})],
                 "prod", postgres="pg-0", database="db name; rm", admin_user="dba")
    commands = {s.action: s.command for s in steps}
    assert shlex.split(commands["delete-pod"]) == ["kubectl", "delete", "pod", hostile, "-n", "prod"]
    assert shlex.split(commands["rollout-undo"]) == ["kubectl", "rollout", "undo", f"deployment/{hostile}", "-n", "prod"]
    assert shlex.split(commands["terminate-backend"]) == [
        "kubectl", "exec", "-n", "prod", "statefulset/pg-0", "--", "psql", "-U", "dba", "-d", "db name; rm",
        "-c", "SELECT pg_terminate_backend(42);"]


def test_a_pid_that_is_not_a_number_plans_no_sql():
    from irkit.findings import Finding, plan
    steps = plan([Finding("lock-root", "pid 1); DROP TABLE orders; --", "d", {"pid": "1); DROP TABLE orders; --"}),
                  Finding("long-running-query", "pid x", "d", {"pid": True})], "prod")
    assert steps == []


def test_the_plan_restarts_the_configured_backend():
    from irkit.findings import Finding, plan
    steps = plan([Finding("db-saturation", "postgres", "d")], "shop", backend="api-server")
    assert steps[0].target == "deployment/api-server" and "deployment/api-server" in steps[0].command
