"""The incident a notebook works on: configuration, connections, and what each phase recorded.

A phase notebook opens one :class:`Incident` and passes it to the phase's step
functions. Each step's result is written to ``<run_dir>/phase-N.json`` the moment it
is known (a later failure loses nothing), and a source that is down or hung turns
into an :class:`Unavailable` result shown in the notebook and recorded as a problem,
so one dead dependency never stops the rest of the playbook.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from irkit import config as irconfig
from irkit.display.views import Note, shown  # re-exported: phases and notebooks meet them through here
from irkit.errors import ConfigError, IrkitError, KubernetesError, PostgresError, PrometheusError, SourceError
from irkit.evidence import records
from irkit.evidence.incident import IncidentView, incident_view
from irkit.evidence.records import Key, RunRecords, Unavailable
from irkit.evidence.rundir import RunDir, make_dir, read_json, write_json, write_text

__all__ = ["LAB_ENV", "Incident", "Note", "Unavailable", "interactive_run", "jsonable", "open_incident", "shown"]

T = TypeVar("T")
PREFETCH_FRESH = 60.0  # seconds a prefetched answer stands for "now"
_CLIENT_ERRORS = {"pg": PostgresError, "prom": PrometheusError, "kube": KubernetesError}


def jsonable(value: Any) -> Any:
    """Plain JSON data from DataFrames, dataclasses, datetimes and the like."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(row) for row in value.reset_index().to_dict("records")] if isinstance(
            value.index, pd.DatetimeIndex) else [jsonable(row) for row in value.to_dict("records")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date | pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is pd.NaT or value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return jsonable(value.item())
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Incident:
    """One phase's view of an incident: config, lazy connections, records, problems."""

    def __init__(self, incident_id: str, phase: int, run_dir: Path, config: irconfig.Config) -> None:
        self.id = incident_id
        self.phase = phase
        self.run_dir = run_dir
        self.files = RunDir(run_dir)  # the name of each of the run's files
        self.config = config
        self.started_at = datetime.now(UTC)
        self.records: dict[str, Any] = {}
        self.problems: list[dict[str, Any]] = []
        self._clients: dict[str, Any] = {}
        self._down: dict[str, tuple[SourceError, float]] = {}
        self.frames: dict[str, Any] = {}  # the series this phase saved, by name: asked once, drawn twice
        self._lock = threading.RLock()  # steps may run on threads (phase 4's checks, prefetches): one writer
        self._prefetched: dict[str, tuple[float, Future[Any]]] = {}
        self._pool: ThreadPoolExecutor | None = None
        make_dir(run_dir)
        self._flush()

    # ---------------------------------------------------------------- connections
    def _client(self, name: str, factory: Callable[[irconfig.Config], Any]) -> Any:
        # A source that did not answer is not asked again for a while: during an outage a dozen
        # steps each waiting out the timeout of the same hung server is minutes lost. The pause
        # is short, so re-running a cell in JupyterLab after fixing a port-forward asks again.
        with self._lock:
            if name in self._down:
                error, since = self._down[name]
                if time.monotonic() - since < self.config.retry_after:
                    raise error.not_retried()
                del self._down[name]
            if name not in self._clients:
                self._clients[name] = factory(self.config)
            return self._clients[name]

    @property
    def pg(self) -> Any:
        from irkit.sources import pg
        return self._client("pg", pg.connect)

    @property
    def prom(self) -> Any:
        from irkit.sources import prom
        return self._client("prom", prom.connect)

    @property
    def kube(self) -> Any:
        from irkit.sources import k8s
        return self._client("kube", k8s.connect)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # closing must never mask what the phase found
                pass
        self._clients.clear()

    # ---------------------------------------------------------------- steps
    def attempt(self, what: str, fn: Callable[[], T]) -> T | records.Unavailable:
        """Run one step; an irkit error becomes an Unavailable marker and a recorded problem."""
        try:
            return fn()
        except IrkitError as exc:
            if isinstance(exc, SourceError) and exc.down:
                for name, kind in _CLIENT_ERRORS.items():
                    if isinstance(exc, kind):
                        self._down.setdefault(name, (exc, time.monotonic()))
            message = irconfig.redact(str(exc), self.config)
            with self._lock:
                self.problems.append({"step": what, "kind": type(exc).__name__, "error": message,
                                      "at": datetime.now(UTC).isoformat()})
                self._flush()
            return records.Unavailable(what, message, type(exc).__name__)

    def prefetch(self, name: str, fn: Callable[[], Any]) -> None:
        """Start asking a source now, in the background, for a step further down the notebook
        (:meth:`fetched`): independent sources answer at once instead of one cell after another."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="irkit-prefetch")
        self._prefetched[name] = (time.monotonic(), self._pool.submit(fn))

    def fetched(self, name: str, fn: Callable[[], T]) -> T:
        """What :meth:`prefetch` started under ``name`` (its error raised here, inside the step's attempt);
        ``fn()`` now, kept under ``name``, when nothing was asked or it was asked more than
        :data:`PREFETCH_FRESH` seconds ago: the cells of a phase that need the pods ask once, and a cell run
        later in JupyterLab asks again."""
        started, future = self._prefetched.get(name, (0.0, None))
        if future is None or time.monotonic() - started > PREFETCH_FRESH:
            future = Future()
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
            self._prefetched[name] = (time.monotonic(), future)
        return future.result()

    def record(self, key: Key[Any], value: T) -> T:
        """Keep ``value`` as record ``key`` of this phase (on disk at once) and return it."""
        with self._lock:
            self.records[key.name] = jsonable(value)
            self._flush()
        return value

    def rows(self, key: Key[Any]) -> list[dict[str, Any]]:
        """The rows this phase recorded as ``key``; none when absent or its source was unavailable
        (an unavailable step is recorded as a marker, which must not pass for rows)."""
        value = self.records.get(key.name)
        return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []

    def unavailable(self, key: Key[Any]) -> records.Unavailable | None:
        """Why this phase could not record ``key`` (its step's source failed), or None."""
        value = self.records.get(key.name)
        return Unavailable(**value) if isinstance(value, dict) and records.is_unavailable(value) else None

    def has(self, key: Key[Any]) -> bool:
        """Whether this phase recorded ``key`` (answered or unavailable)."""
        return key.name in self.records

    def current(self, key: Key[T]) -> T:
        """What this phase recorded as ``key``, typed (None or empty when absent or unavailable)."""
        return key.load(self.records.get(key.name))

    def save_data(self, name: str, frame: Any) -> str:
        """Write ``frame`` in full to ``data/phase<N>-<name>.csv`` in the run; returns that relative path.

        Charts show downsampled series so a notebook's size does not grow with the
        incident's length; this file keeps every point beside them.
        """
        relative = self.files.data_file(self.phase, name)
        path = self.run_dir / relative
        make_dir(path.parent)
        write_text(path, frame.to_csv())
        self.frames[name] = frame
        return relative

    def earlier(self, key: Key[T], phase: int | None = None) -> T:
        """What an earlier phase of this run recorded as ``key`` (by default the phase that records it), typed."""
        return self.run.get(key, phase)

    def view(self) -> IncidentView:
        """The incident across its runs so far, this one included as it stands (each fact with its run)."""
        return incident_view(self.run_dir, self.id)

    @functools.cached_property
    def run(self) -> RunRecords:
        """Every phase's records of this run, read back typed; each earlier phase's file is read once."""
        return RunRecords(self.run_dir)

    def finish(self) -> dict[str, Any]:
        """Mark the phase finished; returns its record."""
        self.close()
        return self._flush(finished=True)

    def _flush(self, finished: bool = False) -> dict[str, Any]:
        path = self.files.phase_json(self.phase)
        previous = read_json(path) or {}
        data = {"schema_version": records.SCHEMA_VERSION, "incident": self.id, "phase": self.phase,
                "started_at": self.started_at.isoformat(),
                "finished_at": datetime.now(UTC).isoformat() if finished else previous.get("finished_at"),
                "records": self.records, "problems": self.problems}
        write_json(path, data)
        if "run" in self.__dict__:  # the cached reader must not answer this phase from before this write
            self.run.forget(self.phase)
        return data

    def __repr__(self) -> str:
        return f"<Incident {self.id} phase {self.phase} in {self.run_dir}>"


def interactive_run(directory: Path, incident: str, config: Path | None, **context: Any) -> Path:
    """The run directory of work done by hand (JupyterLab), with the ``run.json`` that makes it one of the
    incident's runs; an existing one is kept as it is."""
    files = RunDir(make_dir(directory))
    if not files.run_json.exists():
        write_json(files.run_json, {"schema_version": records.SCHEMA_VERSION, "incident": incident,
                                    "run_id": directory.name, "phases": [], "started": [], "interactive": True,
                                    "started_at": datetime.now(UTC).isoformat(), "config_path": str(config or ""),
                                    **context})
    return directory


LAB_ENV = ("IRKIT_INCIDENT", "IRKIT_RUN_DIR", "IRKIT_OUTPUTS")  # what irkit lab gives its kernels


def open_incident(incident_id: str, phase: int, run_dir: str = "", config_path: str = "",
                  **overrides: Any) -> Incident:
    """Open the incident for one phase notebook.

    ``run_dir`` is where ``irkit run`` keeps this run's evidence. Empty (a notebook opened by hand), the run is
    ``IRKIT_RUN_DIR`` (the run ``irkit lab`` opened for its session), else the day's interactive run of the
    incident, ``<outputs>/<incident>/<YYYYMMDD>-interactive`` (``IRKIT_OUTPUTS``, else ``./outputs``). An empty
    ``incident_id`` is ``IRKIT_INCIDENT``'s. An interactive run has its ``run.json``, so the incident's other
    runs (the timeline, phase 5's post-mortem) count what was done in it.
    """
    incident_id = incident_id or os.environ.get("IRKIT_INCIDENT", "") or "INC-LOCAL"
    # Notebook tables show whole cells: a truncated command or query is no use at 3 a.m.
    pd.set_option("display.max_colwidth", None)
    try:  # in a kernel: tables without the index column, ratios as percentages, no raw dicts or NaN
        from IPython import get_ipython
        shell = get_ipython()
        if shell is not None:
            from irkit.display.views import install_formatters
            install_formatters(shell)
    except ImportError:
        pass
    try:
        cfg = irconfig.load(config_path or None, **{k: v for k, v in overrides.items() if v not in (None, "")})
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in a notebook: edit config_path in the parameters cell, or set IRKIT_CONFIG "
                          "before starting JupyterLab)") from exc
    now = datetime.now(UTC)
    outputs = Path(os.environ.get("IRKIT_OUTPUTS") or "outputs")
    directory = Path(run_dir or os.environ.get("IRKIT_RUN_DIR") or outputs / incident_id / f"{now:%Y%m%d}-interactive")
    if RunDir(directory).manifest.exists():
        # A sealed run is evidence: re-running its notebook ("Run All" in JupyterLab) writes a new run beside it.
        directory = directory.parent / f"{now:%Y%m%dT%H%M%SZ}-interactive-from-{directory.name}"
    if not run_dir or directory != Path(run_dir):  # work by hand, not a run irkit run made: one of the incident's
        interactive_run(directory, incident_id, irconfig.locate(config_path or None))
    inc = Incident(incident_id, phase, directory, cfg)
    if phase in (1, 2):  # the sources answer at once while the first cells run
        from irkit.sources import http, k8s
        inc.prefetch("endpoints", lambda: http.check_all(cfg))
        if phase == 2:
            inc.prefetch("pods", lambda: k8s.pods(inc.kube))
    return inc
