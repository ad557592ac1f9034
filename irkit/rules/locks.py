"""The lock graph (playbook 2.4): who waits on whom, its roots, chains and cycles. Pure.

:func:`build_lock_graph` takes the waiter->blocker edges and the sessions that
``sources.pg.lock_graph`` read from ``pg_blocking_pids()`` and walks them once: roots
with the sessions behind them (directly and transitively), cycles (Tarjan), and each
session's depth. The tree text, the diagnosis and the chart read the result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

__all__ = ["EDGE_COLUMNS", "EPISODE_COLUMNS", "SESSION_COLUMNS", "LockGraph", "build_lock_graph", "episodes",
           "sample"]

EDGE_COLUMNS = [
    "blocked_pid", "blocking_pid", "wait_event_type", "wait_event", "wait_seconds", "blocked_query",
    "blocking_query", "blocking_state", "blocking_xact_seconds",
]
SESSION_COLUMNS = ["pid", "state", "query", "xact_seconds", "wait_seconds", "usename", "application_name"]


@dataclass(frozen=True)
class LockGraph:
    """Who waits on whom.

    ``edges``: one row per (waiter, blocker) pair, columns ``blocked_pid, blocking_pid,
    wait_event_type, wait_event, wait_seconds, blocked_query, blocking_query,
    blocking_state, blocking_xact_seconds``.

    ``sessions``: every pid in the graph, columns ``pid, state, query, xact_seconds,
    wait_seconds, usename, application_name``.

    ``roots``: the pids that block others and wait on nobody, most blocking first,
    columns ``pid, state, blocked_count`` (sessions waiting behind it, directly or
    transitively), ``direct_count, xact_seconds, query, usename, application_name``.
    An ``idle in transaction`` root is the classic culprit.

    ``cycles``: sets of pids waiting on each other (a deadlock not yet broken).
    """

    edges: pd.DataFrame
    sessions: pd.DataFrame
    roots: pd.DataFrame
    cycles: tuple[tuple[int, ...], ...]
    # pid -> distance from the nearest blocker that waits on nobody (roots and cycle members are 0);
    # computed once here, read by the chart.
    depths: Mapping[int, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.edges.empty

    @property
    def waiting(self) -> int:
        """Sessions waiting on a lock (a session that waits on two blockers is one session, two edges)."""
        return int(self.edges["blocked_pid"].nunique()) if not self.edges.empty else 0

    def tree(self) -> str:
        """The graph as an indented text tree, blockers at the left (like postgres_dba's lock tree)."""
        if self.empty:
            return "no session is waiting on a lock"
        info = self.sessions.set_index("pid")
        waiters: dict[int, list[int]] = {}
        for waiter, blocker in zip(self.edges["blocked_pid"], self.edges["blocking_pid"], strict=True):
            waiters.setdefault(int(blocker), []).append(int(waiter))
        lines: list[str] = []

        def describe(pid: int) -> str:
            if pid not in info.index:
                return f"pid {pid}"
            s = info.loc[pid]
            query = " ".join(str(s["query"] or "").split())[:70]
            age = s["xact_seconds"]
            age_text = f" xact {age:.0f}s" if pd.notna(age) else ""
            return f"pid {pid} [{s['state']}{age_text}] {query}"

        def walk(pid: int, depth: int, seen: frozenset[int]) -> None:
            for child in sorted(waiters.get(pid, [])):
                if child in seen:
                    lines.append("    " * depth + f"└─ pid {child} (cycle)")
                    continue
                lines.append("    " * depth + "└─ " + describe(child))
                walk(child, depth + 1, seen | {child})

        for pid, blocked in zip(self.roots["pid"], self.roots["blocked_count"], strict=True):
            lines.append(describe(int(pid)) + f"  ← blocks {blocked}")
            walk(int(pid), 1, frozenset({int(pid)}))
        for cycle in self.cycles:
            lines.append("deadlock cycle: " + " → ".join(str(p) for p in (*cycle, cycle[0])))
            for pid in cycle:
                lines.append("    " + describe(pid))
        return "\n".join(lines)

def build_lock_graph(edges: pd.DataFrame, sessions: pd.DataFrame) -> LockGraph:
    """Find roots, transitive waiter counts and cycles from waiter→blocker edges (pure)."""
    edges = edges.reindex(columns=EDGE_COLUMNS).reset_index(drop=True)
    sessions = sessions.reindex(columns=SESSION_COLUMNS).drop_duplicates("pid").reset_index(drop=True)
    blockers_of: dict[int, set[int]] = {}
    waiters_of: dict[int, set[int]] = {}
    for waiter, blocker in zip(edges["blocked_pid"], edges["blocking_pid"], strict=True):
        blockers_of.setdefault(int(waiter), set()).add(int(blocker))
        waiters_of.setdefault(int(blocker), set()).add(int(waiter))

    def behind(pid: int) -> set[int]:
        seen: set[int] = set()
        queue = deque(waiters_of.get(pid, ()))
        while queue:
            nxt = queue.popleft()
            if nxt not in seen and nxt != pid:
                seen.add(nxt)
                queue.extend(waiters_of.get(nxt, ()))
        return seen

    info = sessions.set_index("pid") if not sessions.empty else None
    root_rows = []
    for pid in sorted(waiters_of):
        if pid in blockers_of:
            continue  # it waits too: not a root
        row: dict[str, Any] = {
            "pid": pid, "blocked_count": len(behind(pid)), "direct_count": len(waiters_of[pid]),
        }
        if info is not None and pid in info.index:
            s = info.loc[pid]
            row.update(state=s["state"], xact_seconds=s["xact_seconds"], query=s["query"],
                       usename=s["usename"], application_name=s["application_name"])
        root_rows.append(row)
    roots = pd.DataFrame(root_rows, columns=["pid", "state", "blocked_count", "direct_count", "xact_seconds",
                                             "query", "usename", "application_name"])
    roots = roots.sort_values(["blocked_count", "xact_seconds"], ascending=[False, False]).reset_index(drop=True)
    return LockGraph(edges=edges, sessions=sessions, roots=roots, cycles=_cycles(blockers_of),
                     depths=_depths(blockers_of))


def _depths(blockers_of: dict[int, set[int]]) -> dict[int, int]:
    """Each pid's distance from a blocker that waits on nobody; a cycle's members count as 0."""
    pids = set(blockers_of) | {b for bs in blockers_of.values() for b in bs}
    depth: dict[int, int] = {}

    def level(pid: int, trail: frozenset[int]) -> int:
        if pid not in depth:
            parents = [b for b in blockers_of.get(pid, ()) if b not in trail]
            depth[pid] = 0 if not parents else 1 + max(level(b, trail | {pid}) for b in parents)
        return depth[pid]

    for pid in sorted(pids):
        level(pid, frozenset({pid}))
    return depth


def _cycles(blockers_of: dict[int, set[int]]) -> tuple[tuple[int, ...], ...]:
    """Strongly connected components with more than one pid (Tarjan, iterative)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    found: list[tuple[int, ...]] = []
    counter = 0
    nodes = set(blockers_of) | {b for bs in blockers_of.values() for b in bs}
    for start in sorted(nodes):
        if start in index:
            continue
        work: list[tuple[int, Iterator[int]]] = [(start, iter(sorted(blockers_of.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(blockers_of.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return tuple(sorted(found))


# ---------------------------------------------------------------- history: the graph sampled through the incident
MAX_ROOTS_PER_SAMPLE = 10  # a sample keeps the roots with the longest queues; the rest are counted
EPISODE_COLUMNS = ["root", "state", "query", "application_name", "first_seen", "last_seen", "cleared_at",
                   "peak_waiting", "samples"]


def sample(graph: LockGraph, at: datetime, source: str) -> dict[str, Any]:
    """One moment of the lock graph, small enough to keep hundreds of: when, who sampled it (``phase 2``,
    ``phase 4``, ``sampler``), how many sessions waited, and the roots with their queues."""
    waiting = graph.waiting
    roots = []
    for row in graph.roots.head(MAX_ROOTS_PER_SAMPLE).to_dict("records"):
        age = row.get("xact_seconds")
        roots.append({"pid": int(row["pid"]), "state": _plain(row.get("state")),
                      "query": " ".join(str(_plain(row.get("query")) or "").split())[:200],
                      "application_name": _plain(row.get("application_name")),
                      "xact_seconds": None if age is None or pd.isna(age) else round(float(age), 1),
                      "blocked_count": int(row.get("blocked_count") or 0)})
    return {"at": at.isoformat(), "source": source, "waiting": waiting, "roots": roots,
            "more_roots": max(0, len(graph.roots) - MAX_ROOTS_PER_SAMPLE), "cycles": len(graph.cycles)}


def _plain(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and bool(pd.isna(value))) else value


def episodes(samples: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Each root's episode across the samples (pure): when it was first and last seen holding others, the first
    sample without it (``cleared_at``; None while it still blocks at the last sample), and its longest queue.

    A root is one pid; a pid that clears and blocks again later is a new episode. Samples that could not
    be taken (an ``error`` instead of ``roots``) neither extend nor clear an episode. Columns:
    ``root, state, query, application_name, first_seen, last_seen, cleared_at, peak_waiting, samples``.
    """
    ordered = sorted((s for s in samples if isinstance(s.get("roots"), list) and s.get("at")),
                     key=lambda s: str(s["at"]))
    open_: dict[int, dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    for s in ordered:
        present = {int(r["pid"]): r for r in s["roots"] if isinstance(r, Mapping) and r.get("pid") is not None}
        for pid in [p for p in open_ if p not in present]:
            done.append({**open_.pop(pid), "cleared_at": s["at"]})
        for pid, root in present.items():
            episode = open_.setdefault(pid, {"root": pid, "state": root.get("state"), "query": root.get("query"),
                                             "application_name": root.get("application_name"),
                                             "first_seen": s["at"], "peak_waiting": 0, "samples": 0})
            episode.update(last_seen=s["at"], samples=episode["samples"] + 1,
                           peak_waiting=max(episode["peak_waiting"], int(root.get("blocked_count") or 0)))
    done += [{**e, "cleared_at": None} for e in open_.values()]
    frame = pd.DataFrame(done, columns=EPISODE_COLUMNS).sort_values(["first_seen", "root"]).reset_index(drop=True)
    return frame.astype(object).where(frame.notna(), None)  # a root still blocking: cleared_at None, not NaN
