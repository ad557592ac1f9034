"""The run directory: every file in it, how each is written, read, summed up, reported and sealed
(Post-Incident 2: preserve evidence).

Layout, written as the run goes (:mod:`~irkit.evidence.rundir` names every file): ``run.json`` (what the run set
out to do), ``phase-N.json`` (each phase's typed records, :mod:`~irkit.evidence.records`), the executed
notebooks, ``data/`` (full series behind the charts), then ``summary.json`` (:mod:`~irkit.evidence.summary`),
``report.html`` (:mod:`~irkit.evidence.report`) and ``manifest.json`` (:mod:`~irkit.evidence.manifest`), which
``irkit verify`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from irkit.evidence import records
from irkit.evidence.manifest import (
    KEY_ENV,
    KEY_FILE_ENV,
    RunState,
    Trust,
    run_state,
    signed,
    trust,
    verify,
    write_manifest,
)
from irkit.evidence.report import write_report
from irkit.evidence.rundir import MANIFEST, RUN, RunDir, read_json, reopened, write_json
from irkit.evidence.summary import Summary, summarize

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "MANIFEST", "RUN", "SCHEMA_VERSION", "RunDir", "RunState", "RunSummary",
           "Summary", "Trust", "read_json", "reopened", "run_state", "signed", "summaries", "summarize", "trust", "verify",
           "write_json", "write_manifest", "write_report"]

SCHEMA_VERSION = records.SCHEMA_VERSION


@dataclass(frozen=True)
class RunSummary:
    """What an earlier run's ``summary.json`` says, for "related incidents"."""

    run_dir: Path
    incident: str
    run_id: str
    severity: str | None
    affected: tuple[str, ...]
    finished_at: datetime | None


MAX_SUMMARIES = 2000  # earlier runs looked at for related incidents: the newest


def summaries(outputs: Path) -> list[RunSummary]:
    """The newest :data:`MAX_SUMMARIES` sealed runs under ``outputs/<incident>/<run id>/`` (real directories, not
    links); summaries that are unreadable, not regular files or over a MiB are passed over."""
    found = []
    runs = [run for incident in (outputs.iterdir() if outputs.is_dir() else ())
            if not incident.is_symlink() and incident.is_dir()
            for run in incident.iterdir() if not run.is_symlink() and run.is_dir()]
    for run in sorted(runs, key=lambda p: p.name)[-MAX_SUMMARIES:]:
        summary = Summary.read(RunDir(run))
        if summary is None:
            continue
        try:
            finished = datetime.fromisoformat(summary.finished_at) if summary.finished_at else None
        except ValueError:
            finished = None
        found.append(RunSummary(run, summary.incident or run.parent.name, summary.run_id or run.name,
                                summary.severity.name if summary.severity else None, summary.affected, finished))
    return found
