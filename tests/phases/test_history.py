"""The incident through time, on recorded data: each lock-graph sample kept as it is taken, the lock history told
when nothing was sampled, and each episode a sentence of the post-mortem."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from irkit.config import Config
from irkit.evidence import records as R
from irkit.phases.history import episode_lines, lock_history, record_sample
from irkit.phases.incident import Incident, Note
from irkit.rules.locks import LockGraph, build_lock_graph, episodes


def _graph(*pairs: tuple[int, int]) -> LockGraph:
    sessions = pd.DataFrame([{"pid": 1, "state": "idle in transaction", "query": "UPDATE orders SET status = 'paid'",
                              "xact_seconds": 90.0, "application_name": "checkout"}])
    return build_lock_graph(pd.DataFrame([{"blocked_pid": w, "blocking_pid": b} for w, b in pairs]), sessions)


def test_each_sample_of_the_lock_graph_is_on_disk_as_it_is_taken_with_who_took_it(tmp_path: Path):
    inc = Incident("INC-1", 4, tmp_path / "INC-1" / "20261130T000000Z", Config())
    record_sample(inc, _graph((2, 1), (3, 1)), "phase 4")
    record_sample(inc, _graph(), "phase 4")  # the next round: nothing waits any more
    on_disk = json.loads((inc.run_dir / "phase-4.json").read_text())["records"]["lock_samples"]
    assert [(s["source"], s["waiting"], [r["pid"] for r in s["roots"]]) for s in on_disk] == [
        ("phase 4", 2, [1]), ("phase 4", 0, [])]
    assert on_disk == inc.rows(R.LOCK_SAMPLES)
    assert on_disk[0]["roots"][0]["state"] == "idle in transaction" and on_disk[0]["roots"][0]["blocked_count"] == 2


def test_the_lock_history_says_why_it_shows_no_episode(tmp_path: Path):
    inc = Incident("INC-1", 2, tmp_path / "INC-1" / "20261130T000000Z", Config())
    table = lock_history(inc).table
    assert isinstance(table, Note) and table.text.startswith("the lock graph was not sampled")
    record_sample(inc, _graph(), "phase 2")
    table = lock_history(inc).table
    assert isinstance(table, Note) and table.text == "no session blocked another in 1 sample(s) of the lock graph"


def test_a_root_sampled_then_gone_is_an_episode_with_its_clearing(tmp_path: Path):
    inc = Incident("INC-1", 2, tmp_path / "INC-1" / "20261130T000000Z", Config())
    record_sample(inc, _graph((2, 1), (3, 1)), "phase 2")
    record_sample(inc, _graph(), "phase 2")
    [episode] = lock_history(inc).table.to_dict("records")
    assert episode["root"] == 1 and episode["peak_waiting"] == 2 and episode["cleared_at"] is not None


def test_an_episode_is_a_sentence_of_the_postmortem_with_the_sessions_words_escaped():
    root = {"pid": 7, "state": "idle in transaction", "query": "UPDATE `orders` SET x = 1",
            "application_name": "<img src=x> *checkout*", "blocked_count": 3}
    found = episodes([{"at": "2026-11-30T03:00:00+00:00", "roots": [root]},
                      {"at": "2026-11-30T03:00:05+00:00", "roots": [{**root, "blocked_count": 5}]},
                      {"at": "2026-11-30T03:01:00+00:00", "roots": []}])
    [line] = episode_lines(found)
    assert line.startswith("- pid 7 (idle in transaction, &lt;img src=x&gt; \\*checkout\\*) "
                           "``UPDATE `orders` SET x = 1``")
    assert line.endswith("first seen blocking at 03:00:00 UTC, up to 5 waiting behind it; cleared by 03:01:00 UTC")
    [still] = episode_lines(episodes([{"at": "2026-11-30T03:00:00+00:00", "roots": [root]}]))
    assert still.endswith("still blocking at the last sample")
