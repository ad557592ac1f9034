"""The incident a phase notebook opens: a sealed run is never written into, a lost config is one line, each record
is on disk at once, and a source that is down is a recorded problem, not a crash."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from irkit import config, evidence
from irkit.config import Config
from irkit.errors import ConfigError
from irkit.evidence import records as R
from irkit.phases.incident import Incident, Unavailable, open_incident
from irkit.sources import prom
from tests.evidence.test_manifest import _sealed


def test_run_all_on_a_sealed_run_writes_a_new_run_beside_it(tmp_path: Path):
    run_dir = _sealed(tmp_path)
    inc = open_incident("INC-1", 1, run_dir=str(run_dir), config_path="")
    assert inc.run_dir != run_dir and inc.run_dir.parent == run_dir.parent
    assert inc.run_dir.name.endswith(f"-interactive-from-{run_dir.name}")
    assert inc.run_dir.name > run_dir.name  # named by its time: it sorts after the run it came from
    assert json.loads((inc.run_dir / "run.json").read_text())["interactive"] is True  # one of the incident's runs
    inc.finish()
    assert not any(evidence.verify(run_dir).values())  # the sealed run is as it was


def test_a_lost_config_is_one_line_that_says_where_to_fix_it(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        open_incident("INC-1", 1, run_dir=str(tmp_path), config_path=str(tmp_path / "gone" / "irkit.toml"))
    lines = caught.value._render_traceback_()
    assert len(lines) == 1 and "edit config_path in the parameters cell, or set IRKIT_CONFIG" in lines[0]


def test_each_record_is_on_disk_the_moment_it_is_known_as_plain_json(tmp_path: Path):
    inc = Incident("INC-1", 1, tmp_path, Config())
    inc.record(R.ERROR_RATIO_NOW, pd.DataFrame([{"service": "backend", "error_ratio": math.nan},
                                                {"service": "all", "error_ratio": 0.12}]))
    written = json.loads((tmp_path / "phase-1.json").read_text())
    assert written["records"]["error_ratio_now"] == [{"service": "backend", "error_ratio": None},
                                                     {"service": "all", "error_ratio": 0.12}]
    assert written["finished_at"] is None  # a phase cut short here still left what it knew
    inc.finish()
    assert json.loads((tmp_path / "phase-1.json").read_text())["finished_at"] is not None


def test_a_source_that_is_down_is_a_recorded_problem_and_not_asked_again_while_a_bug_still_surfaces(
        tmp_path: Path, closed_port: str):
    inc = Incident("INC-1", 1, tmp_path, config.load(env={}, prom_url=f"http://{closed_port}"))
    first = inc.attempt("error ratio", lambda: prom.error_ratio(inc.prom))
    again = inc.attempt("p95 latency", lambda: prom.latency_quantile(inc.prom, 0.95))
    assert isinstance(first, Unavailable) and first.kind == "PrometheusUnavailable"
    assert isinstance(again, Unavailable) and "not asked again yet, it did not answer earlier" in again.error
    problems = json.loads((tmp_path / "phase-1.json").read_text())["problems"]
    assert [(p["step"], p["kind"]) for p in problems] == [("error ratio", "PrometheusUnavailable"),
                                                          ("p95 latency", "PrometheusUnavailable")]
    with pytest.raises(ZeroDivisionError):  # not an irkit error: a bug is not turned into "unavailable"
        inc.attempt("a bug", lambda: 1 / 0)
