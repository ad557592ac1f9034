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



def test_cycles_are_found_even_with_a_tail_waiting_on_them():
    graph = build_lock_graph(_edges((1, 2), (2, 3), (3, 1), (4, 1), (9, 8)), pd.DataFrame({"pid": []}))
    assert graph.cycles == ((1, 2, 3),)
    assert list(graph.roots.pid) == [8]



def test_depths_are_computed_once_with_the_graph():
    graph = build_lock_graph(_edges((2, 1), (3, 2), (4, 1), (6, 5), (5, 6)), pd.DataFrame({"pid": []}))
    assert graph.depths[1] == 0 and graph.depths[2] == 1 and graph.depths[3] == 2 and graph.depths[4] == 1
    assert graph.depths[5] in (0, 1) and graph.depths[6] in (0, 1)  # a cycle has no root: it is drawn at the left
