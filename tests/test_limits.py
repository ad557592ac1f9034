"""The bounds on what comes from outside: each parameter within what makes sense during an incident, refused in one
line naming the bound otherwise, and the bounds on counts and sizes enforced where the input is read."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from irkit import config, limits, playbook, runner
from irkit.errors import ConfigError, ParameterError
from irkit.limits import PARAMETERS, bounded


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_a_parameter_at_either_end_of_its_bound_is_taken(name: str):
    bound = PARAMETERS[name]
    assert bounded(name, bound.low) == bound.low
    assert bounded(name, bound.high) == bound.high


OUTSIDE = {"below": lambda b: b.low - 1, "above": lambda b: b.high + 1, "nan": lambda b: math.nan,
           "infinite": lambda b: math.inf, "a boolean": lambda b: True, "text": lambda b: str(b.low)}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
@pytest.mark.parametrize("outside", sorted(OUTSIDE))
def test_a_parameter_outside_its_bound_or_not_a_number_is_refused_naming_the_bound_and_the_fix(name: str,
                                                                                               outside: str):
    bound = PARAMETERS[name]
    with pytest.raises(ParameterError) as caught:
        bounded(name, OUTSIDE[outside](bound))
    assert str(caught.value) == (f"parameter {name} must be a number from {bound}; edit the parameters cell "
                                 f"or pass -p {name} VALUE")


def test_every_bounded_parameter_is_declared_by_a_notebook_and_its_default_is_within_the_bound():
    for name, bound in PARAMETERS.items():
        defaults = [runner.declared_parameters(p)[name]["default"] for p in playbook.NUMBERS
                    if name in runner.declared_parameters(p)]
        assert defaults, f"no notebook declares {name}"
        for default in defaults:
            assert bound.low <= ast.literal_eval(default) <= bound.high, (name, default)


def test_more_parameters_than_the_bound_are_refused_before_any_is_read():
    params = {f"p{i}": "1" for i in range(limits.MAX_PARAMETERS + 1)}
    with pytest.raises(ParameterError, match=f"{limits.MAX_PARAMETERS + 1} parameters given; at most "
                                             f"{limits.MAX_PARAMETERS}"):
        runner.check_parameters(params, [1])


def test_a_parameter_longer_than_the_bound_is_refused():
    with pytest.raises(ParameterError, match=f"longer than {limits.MAX_PARAMETER_TEXT} characters"):
        runner.check_parameters({"log_tail": "9" * (limits.MAX_PARAMETER_TEXT + 1)}, [2])


def test_a_config_file_over_the_bound_is_refused_unread(tmp_path: Path):
    path = tmp_path / "irkit.toml"
    path.write_text("# padding\n" * (limits.MAX_FILE_BYTES // 10 + 1))
    assert path.stat().st_size > limits.MAX_FILE_BYTES
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        config.load(path, env={})
