"""The lock graph, built from plain edges: roots, transitive counts, cycles, depths."""

from __future__ import annotations

import pandas as pd

from irkit.rules.locks import build_lock_graph


def _edges(*pairs: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame([{"blocked_pid": w, "blocking_pid": b} for w, b in pairs])



def test_transitive_counts_follow_the_whole_tree():
    graph = build_lock_graph(_edges((2, 1), (3, 2), (4, 2), (5, 1), (7, 6)), pd.DataFrame({"pid": []}))
    assert list(zip(graph.roots.pid, graph.roots.blocked_count, graph.roots.direct_count)) == [(1, 4, 2), (6, 1, 1)]
    assert graph.cycles == ()



def test_a_waiter_blocked_by_two_sessions_is_counted_once():
    graph = build_lock_graph(_edges((3, 1), (3, 2), (4, 3)), pd.DataFrame({"pid": []}))
    assert dict(zip(graph.roots.pid, graph.roots.blocked_count)) == {1: 2, 2: 2}
    assert graph.waiting == 2  # sessions 3 and 4, not three edges



def test_cycles_are_found_even_with_a_tail_waiting_on_them():
    graph = build_lock_graph(_edges((1, 2), (2, 3), (3, 1), (4, 1), (9, 8)), pd.DataFrame({"pid": []}))
    assert graph.cycles == ((1, 2, 3),)
    assert list(graph.roots.pid) == [8]



def test_depths_are_computed_once_with_the_graph():
    graph = build_lock_graph(_edges((2, 1), (3, 2), (4, 1), (6, 5), (5, 6)), pd.DataFrame({"pid": []}))
    assert graph.depths[1] == 0 and graph.depths[2] == 1 and graph.depths[3] == 2 and graph.depths[4] == 1
    assert graph.depths[5] in (0, 1) and graph.depths[6] in (0, 1)  # a cycle has no root: it is drawn at the left


def _at(second: int) -> str:
    return f"2026-12-01T04:00:{second:02d}+00:00"


def _sample(second: int, *roots: tuple[int, int]) -> dict:
    return {"at": _at(second), "source": "sampler", "waiting": sum(n for _, n in roots),
            "roots": [{"pid": pid, "state": "idle in transaction", "query": f"q{pid}", "blocked_count": n}
                      for pid, n in roots]}


def test_lock_history_says_when_each_root_appeared_how_many_waited_and_when_it_cleared():
    from irkit.rules.locks import episodes
    samples = [_sample(0), _sample(10, (7, 1)), _sample(20, (7, 4), (9, 1)), _sample(30, (9, 2)),
               {"at": _at(40), "source": "sampler", "error": "timed out"},  # neither extends nor clears
               _sample(50, (9, 2)), _sample(55)]
    found = episodes(list(reversed(samples))).to_dict("records")  # any order in, time order out
    assert [(e["root"], e["first_seen"], e["last_seen"], e["cleared_at"], e["peak_waiting"]) for e in found] == [
        (7, _at(10), _at(20), _at(30), 4), (9, _at(20), _at(50), _at(55), 2)]


def test_a_root_that_blocks_again_later_is_a_new_episode_and_one_still_blocking_has_no_clear_time():
    from irkit.rules.locks import episodes
    found = episodes([_sample(0, (7, 1)), _sample(10), _sample(20, (7, 3))]).to_dict("records")
    assert [(e["first_seen"], e["cleared_at"], e["peak_waiting"]) for e in found] == [
        (_at(0), _at(10), 1), (_at(20), None, 3)]
