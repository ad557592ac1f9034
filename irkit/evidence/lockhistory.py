"""The lock graph through the incident (playbook 2.4, "Check for locks", as a film instead of a photograph).

A lock graph is a moment. Three things sample it: phase 2's lock-graph cell and phase 4's checks record
a sample in their phase's records (:data:`~irkit.evidence.records.LOCK_SAMPLES`), and while ``irkit run``
runs, :class:`LockSampler` takes one every ``lock_sample_seconds`` into ``lock-history.json`` of the run.
:func:`incident_samples` reads them back from every run of the incident, in time order, for the chart of
which root appeared when, how many waited behind it, and when it cleared.

Cost is bounded: one query per sample on one connection of its own (``pg_blocking_pids()`` takes the lock
manager's locks briefly, so never in a tight loop), at least :data:`MIN_INTERVAL` seconds apart, at most
:data:`MAX_SAMPLES` per run, each under ``statement_timeout``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from irkit.config import Config, redact
from irkit.errors import IrkitError
from irkit.evidence import records as R
from irkit.evidence.rundir import RunDir, read_json, write_json
from irkit.rules.locks import sample

__all__ = ["MAX_SAMPLES", "MIN_INTERVAL", "LockSampler", "incident_samples", "run_samples"]
MIN_INTERVAL = 5.0  # seconds between two samples, whatever lock_sample_seconds says
MAX_SAMPLES = 720  # per run: an hour at 5 s, six at 30 s; then the sampler stops and says so


class LockSampler:
    """Samples the lock graph in a background thread while a run's phases execute; a context manager.

    It never raises into the run: a sample that fails is recorded as ``{"at", "source", "error"}`` and the
    next one is tried at the next interval. ``lock-history.json`` is rewritten atomically after each sample,
    so a run that is killed keeps what was sampled.
    """

    def __init__(self, config: Config, run_dir: Path, interval: float | None = None) -> None:
        self.config = config
        self.path = RunDir(run_dir).lock_history
        wanted = config.lock_sample_seconds if interval is None else interval
        self.interval = max(MIN_INTERVAL, wanted) if wanted > 0 else 0.0
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._sealed = False  # set by stop(): nothing is written after it (the manifest follows)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="irkit-lock-sampler", daemon=True)
        self._session: Any = None

    def __enter__(self) -> LockSampler:
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop; a sample still in flight after a second is dropped (a hung database must not hold up sealing
        the run), and nothing is written after this returns."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        with self._lock:
            self._sealed = True

    def _loop(self) -> None:
        try:
            while not self._stop.is_set() and len(self.samples) < MAX_SAMPLES:
                self.sample_once()
                self._stop.wait(self.interval)
            if len(self.samples) >= MAX_SAMPLES:
                self.samples.append({"at": datetime.now(UTC).isoformat(), "source": "sampler",
                                     "error": f"stopped after {MAX_SAMPLES} samples (the bound per run)"})
                self._write()
        finally:
            if self._session is not None:
                try:
                    self._session.close()
                except Exception:  # closing must never mask what the run found
                    pass

    def sample_once(self) -> dict[str, Any]:
        """Take one sample now (the thread calls this; a test may too)."""
        from irkit.sources import pg  # the run's process loads psycopg only when it samples
        at = datetime.now(UTC)
        try:
            if self._session is None:
                self._session = pg.connect(self.config)
            taken = sample(pg.lock_graph(self._session), at, "sampler")
        except IrkitError as exc:
            taken = {"at": at.isoformat(), "source": "sampler", "error": redact(str(exc), self.config)[:300]}
        self.samples.append(taken)
        self._write()
        return taken

    def _write(self) -> None:
        with self._lock:
            if not self._sealed:
                self._write_file()

    def _write_file(self) -> None:
        write_json(self.path, {"schema_version": R.SCHEMA_VERSION, "interval_seconds": self.interval,
                               "samples": self.samples})


def run_samples(run_dir: Path) -> list[dict[str, Any]]:
    """The samples of one run: its sampler's file and what phases 2 and 4 recorded, in time order."""
    history = read_json(RunDir(run_dir).lock_history)
    found: list[dict[str, Any]] = []
    if isinstance(history, dict) and isinstance(history.get("samples"), list):
        found += [s for s in history["samples"] if isinstance(s, dict)]
    records = R.RunRecords(run_dir)
    for phase in (2, 4):
        found += records.get(R.LOCK_SAMPLES, phase)
    return sorted((s for s in found if isinstance(s.get("at"), str)), key=lambda s: s["at"])


def incident_samples(runs: Iterable[Path]) -> list[dict[str, Any]]:
    """Every run's samples (``runs``: the incident's run directories), in time order."""
    return sorted((s for run in runs for s in run_samples(run)), key=lambda s: s["at"])
