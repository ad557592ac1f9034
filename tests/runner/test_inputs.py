"""What `irkit run` takes from outside, checked before anything runs: phases, parameters, the context serve hands it."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit import runner
from irkit.errors import ParameterError


@pytest.mark.parametrize(("params", "message"), [
    ({"windw_minutes": "5"}, "unknown parameter 'windw_minutes'.*window_minutes"),
    ({"window_minutes": "soon"}, "must be int"),
    ({"pg_password": "x"}, "looks like a secret.*IRKIT_PG_PASSWORD"),
    ({"log_tail": "postgresql://u:pw@h/db"}, "looks like a secret"),
])
def test_bad_parameters_are_refused_before_anything_runs(params: dict[str, str], message: str, tmp_path: Path):
    with pytest.raises(ParameterError, match=message):
        runner.run("INC-BAD", params=params, outputs=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("text", ["[]", '{"x": "y"}', "not json", '{"alert": 5}', '{"alert": "' + "x" * 9000 + '"}'])
def test_a_context_that_is_not_what_serve_writes_is_refused_in_one_line(text: str):
    with pytest.raises(ParameterError, match="--context .* is not a JSON object of alert, alert_group, serve_job"):
        runner.parse_context(text)
    assert runner.parse_context('{"alert": {"name": "X"}, "serve_job": "abc"}') == {"alert": {"name": "X"},
                                                                                   "serve_job": "abc"}


def test_phases_are_read_as_ranges_and_lists_in_order():
    assert runner.parse_phases("1-5") == [1, 2, 3, 4, 5]
    assert runner.parse_phases("1,3-4") == [1, 3, 4]
    assert runner.parse_phases(" 4 , 2 ") == [2, 4]


@pytest.mark.parametrize(("text", "message"), [
    ("2-9", "phases are 1 to 5"),
    ("5-1", "phases are 1 to 5"),
    ("0", "phases are 1 to 5"),
    ("", "not like 1-5"),
    ("1;reboot", "not like 1-5"),
    ("1," * 500, "not like 1-5"),
])
def test_a_bad_phase_list_is_refused_and_echoed_cut_short(text: str, message: str):
    with pytest.raises(ParameterError, match=message) as caught:
        runner.parse_phases(text)
    assert len(str(caught.value)) < 150  # a 1,000-character input is not echoed whole


def test_each_phase_gets_only_the_parameters_it_declares_as_their_declared_type():
    checked = runner.check_parameters({"window_minutes": "30", "log_tail": "50", "execute_mitigations": "true"},
                                      [1, 2, 3])
    assert checked == {1: {"window_minutes": 30}, 2: {"window_minutes": 30, "log_tail": 50},
                       3: {"window_minutes": 30, "execute_mitigations": True}}


def test_a_value_of_the_wrong_type_is_refused_without_echoing_it():
    with pytest.raises(ParameterError, match="window_minutes must be int") as caught:
        runner.check_parameters({"window_minutes": "hunter2hunter2"}, [1])
    assert "hunter2" not in str(caught.value)


def test_a_parameter_irkit_run_sets_itself_is_refused():
    with pytest.raises(ParameterError, match="'run_dir' is set by irkit run itself"):
        runner.check_parameters({"run_dir": "/tmp/elsewhere"}, [1])
