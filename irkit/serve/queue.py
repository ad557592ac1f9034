"""``irkit serve``'s jobs: one run each, kept in ``<state>/queue.json`` so jobs waiting when serve stops run
after it starts again; bounded, a group's runs in order, a repeated notification starting nothing."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.config import redact
from irkit.evidence.rundir import make_dir, read_json, write_json
from irkit.serve.webhook import Group, incident_id

__all__ = ["MAX_CONTEXT_KEY", "Job", "JobQueue", "QueueFull", "context"]

MAX_CONTEXT_KEY = 1000  # characters of the group key a run's context carries (serve keys on the whole of it)


@dataclass
class Job:
    """One run to start: for an alert group, firing or resolved."""

    id: str
    incident: str
    group_key: str
    status: str  # firing | resolved
    phases: str
    parameters: dict[str, str]
    alert: dict[str, str]
    state: str = "queued"  # queued | running | done | failed
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    run_dir: str = ""
    error: str = ""


class QueueFull(Exception):
    """The queue holds its bound of waiting jobs; the caller is told to retry later (503, Retry-After)."""


class JobQueue:
    """The jobs, kept in ``<state>/queue.json``: waiting jobs survive a restart of ``irkit serve``.

    Bounded: at most ``max_queued`` jobs wait (more is :class:`QueueFull`), at most ``keep_done`` finished ones
    are kept. A state file that cannot be read as a queue is never overwritten: it is moved aside
    (``queue.json.damaged-<time>``), said in :attr:`damaged`, and serve starts with the jobs it could read.
    """

    def __init__(self, state_dir: Path, keep_done: int = 200, max_queued: int = 100) -> None:
        self.path = state_dir / "queue.json"
        make_dir(state_dir)
        self.keep_done, self.max_queued = keep_done, max_queued
        self._lock = threading.Condition()
        self.damaged = ""  # where a damaged state file was put aside, and why
        self.jobs = self._load()
        for job in self.jobs:
            if job.state == "running":  # cut short when serve stopped: run it again
                job.state, job.error = "queued", "requeued: irkit serve stopped while it ran"
        self._save()

    def _load(self) -> list[Job]:
        if not self.path.exists() and not self.path.is_symlink():
            return []
        data = read_json(self.path)
        entries = data.get("jobs") if isinstance(data, dict) else None
        jobs: list[Job] = []
        names = {f.name for f in fields(Job)}
        for entry in entries if isinstance(entries, list) else []:
            try:  # keys a later version added are left out; a job missing what it needs is not a job
                jobs.append(Job(**{k: v for k, v in entry.items() if k in names}))
            except (TypeError, AttributeError):
                continue
        if not isinstance(entries, list) or len(jobs) != len(entries):
            aside = self.path.with_name(f"queue.json.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            os.replace(self.path, aside)
            kept = f"{len(jobs)} of its {len(entries)} jobs kept" if isinstance(entries, list) else "no job kept"
            self.damaged = f"{self.path} could not be read as a queue ({kept}); it was moved to {aside}"
        return jobs

    def _save(self) -> None:
        finished = [j for j in self.jobs if j.state in ("done", "failed")]
        if len(finished) > self.keep_done:  # bounded: the oldest finished jobs go first
            drop = {id(j) for j in finished[:len(finished) - self.keep_done]}
            self.jobs = [j for j in self.jobs if id(j) not in drop]
        write_json(self.path, {"jobs": [asdict(j) for j in self.jobs]})

    def add(self, group: Group) -> tuple[Job, bool]:
        """Queue a run for ``group``; (the job, False) when a run of the group with the same status is queued or
        running already (Alertmanager repeats a notification until it is answered, and resends resolved ones).
        :class:`QueueFull` when ``max_queued`` jobs wait."""
        with self._lock:
            pending = next((j for j in self.jobs if j.group_key == group.key and j.status == group.status
                            and j.state in ("queued", "running")), None)
            if pending is not None:
                return pending, False
            if sum(j.state == "queued" for j in self.jobs) >= self.max_queued:
                raise QueueFull(f"{self.max_queued} jobs are waiting already")
            job = Job(uuid.uuid4().hex[:12], incident_id(group.key), group.key, group.status, group.phases,
                      group.parameters, {"name": group.name, "startsAt": group.starts_at, "status": group.status})
            self.jobs.append(job)
            self._save()
            self._lock.notify_all()
            return job, True

    def take(self, stop: threading.Event) -> Job | None:
        """The oldest queued job whose group has none running (a group's runs go in order); waits for one."""
        with self._lock:
            while not stop.is_set():
                busy = {j.group_key for j in self.jobs if j.state == "running"}
                job = next((j for j in self.jobs if j.state == "queued" and j.group_key not in busy), None)
                if job is not None:
                    job.state = "running"
                    self._save()
                    return job
                self._lock.wait(0.5)
            return None

    def finish(self, job: Job, state: str, run_dir: str = "", error: str = "") -> None:
        with self._lock:
            job.state, job.run_dir, job.error = state, run_dir, error
            self._save()
            self._lock.notify_all()

    def counts(self) -> dict[str, int]:
        with self._lock:
            found: dict[str, int] = {}
            for job in self.jobs:
                found[job.state] = found.get(job.state, 0) + 1
            return found


def context(job: Job) -> dict[str, Any]:
    """What a run started for ``job`` keeps in run.json (``--context`` for a Job): the alert, the group (its key
    redacted and cut to :data:`MAX_CONTEXT_KEY`: the incident id already stands for the whole of it), the job."""
    key = redact(job.group_key)
    return {"alert": job.alert, "serve_job": job.id,
            "alert_group": key if len(key) <= MAX_CONTEXT_KEY else key[:MAX_CONTEXT_KEY - 1] + "…"}
