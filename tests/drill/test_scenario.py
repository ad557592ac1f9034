"""Scenario files: the built-in ones and one's own, a malformed one refused naming the key to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit import drill
from irkit.errors import ScenarioError

SCENARIO = Path(drill.SCENARIO_DIR / "lock-contention.toml").read_text()


@pytest.mark.parametrize(("edit", "message"), [
    (("severity = \"SEV-2\"", "severity = \"SEV-9\""), r"\[truth\]: severity 'SEV-9' must be one of SEV-1"),
    (("pid {holder}\" }\n", "pid {holdr}\" }\n"), r"\{holdr\} names no session; sessions: holder"),
    (("start = \"-25m\"", "start = \"25 minutes\""), r"'25 minutes' is not an offset like -3h"),
    (("error_ratio = 0.12", "error_ratio = 12"), r"error_ratio 12.0 must be between 0 and 1"),
    (("[marketplace]", "[config]\nnamespce = \"x\"\n\n[marketplace]"), r"namespce"),
    (("[marketplace]", "[parameters]\nwindow = 5\n\n[marketplace]"), r"unknown parameter 'window'"),
    (("title = ", "titel = "), r"unknown key\(s\) titel"),
    (("backend_up = true", "backend_upp = true"), r"\[marketplace\]: unknown key\(s\) backend_upp; valid: backend_up"),
    (("p95_seconds = 2.5", "p95 = 2.5"), r"segment 2: unknown key\(s\) p95"),
    (('state = "running", logs', 'state = "sleeping", logs'), r"\[cluster\]: unknown pod state 'sleeping'"),
    (('name = "frontend-deployment"', 'nmae = "frontend-deployment"'),
     r"\[cluster\]: cluster workloads #2: unknown key\(s\) nmae; valid: app, config_changed, container"),
    (('state = "running", logs', 'state = "running", exit_cod = 1, logs'),
     r"cluster workloads #1 pods #1: unknown key\(s\) exit_cod"),
    (('state = "running", logs', 'state = "crashloop", exit_code = 300, logs'),
     r"exit_code must be a whole number from 0 to 255, not 300"),
    (('state = "running", logs', 'revision = 3, logs'), r"a pod group's revision must be 1 to 2"),
    (("real = true", "real = true\nplan = { forbid = [{ action = \"reboot\" }] }"),
     r"mitigation action 'reboot' is not one irkit plans"),
    (("real = true", "real = true\nno_cause = true"), r"no_cause = true names no root, mitigation"),
    (("[marketplace]", "[marketplace]\nendpoints = [{ path = \"healthz\" }]"), r"\[endpoints\] #1: path 'healthz' must be a path like /healthz"),
])
def test_a_malformed_scenario_names_the_key_to_fix(edit: tuple[str, str], message: str, tmp_path: Path):
    assert edit[0] in SCENARIO
    path = tmp_path / "mine.toml"
    path.write_text(SCENARIO.replace(edit[0], edit[1], 1))
    with pytest.raises(ScenarioError, match=message) as info:
        drill.load_scenario(path)
    assert str(path) in str(info.value)


def test_an_unknown_scenario_lists_the_built_in_ones():
    with pytest.raises(ScenarioError, match="use one of .*lock-contention"):
        drill.load_scenario("lock-contentoin")


def test_a_scenario_file_of_ones_own_is_loaded_by_path(tmp_path: Path):
    path = tmp_path / "checkout-locks.toml"
    path.write_text(SCENARIO.replace('title = "Order updates', 'title = "Checkout updates'))
    scenario = drill.load_scenario(str(path))
    assert scenario.name == "checkout-locks" and scenario.title.startswith("Checkout updates")
    assert [s.name for s in scenario.sessions] == ["holder", "waiter-1", "waiter-2", "waiter-3"]
    assert scenario.live["backend"].error_ratio == 0.12  # the last segment goes on live

