"""``irkit serve``: Alertmanager's webhook starts runs where the incident is.

Alertmanager posts an alert group (webhook payload version 4) to ``POST /alerts`` (:mod:`~irkit.serve.webhook`
reads it). Each group is one incident, ``ALERT-<12 hex digits of the group key>``: when the group fires, the
``--firing-phases`` run (1-2), when it resolves the ``--resolved-phases`` (4). A rule binds itself to the runbook
with annotations on its alerts: ``irkit_phases`` (e.g. ``1-3``) and ``irkit_parameters``
(``window_minutes=60,log_tail=100``).

The caller authenticates with a bearer token (``IRKIT_SERVE_TOKEN`` or the file ``IRKIT_SERVE_TOKEN_FILE``):
anything else is 401. A body over 1 MiB is 413; one that is not an alert group, 400 with the reason; a full queue
503 with Retry-After. Accepted groups become jobs (:mod:`~irkit.serve.queue`); at most ``--max-runs`` run at once,
a group's in order. A run is started in-process (``runner.run``), or with ``--job-template`` as a Kubernetes Job
(:mod:`~irkit.serve.jobs`), followed to its end so the queue's order and bounds hold the same way.
"""

from __future__ import annotations

import hmac
import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit import runner
from irkit.errors import IrkitError, ParameterError
from irkit.escaping import terminal
from irkit.evidence.remote import is_remote
from irkit.serve.jobs import JobLauncher, Launched
from irkit.serve.queue import MAX_CONTEXT_KEY, Job, JobQueue, QueueFull, context
from irkit.serve.webhook import (
    FIRING_PHASES,
    MAX_BODY,
    MAX_DEPTH,
    MAX_NAME,
    NEVER_FROM_AN_ALERT,
    RESOLVED_PHASES,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    AlertGroup,
    BadGroup,
    Group,
    incident_id,
    parse_group,
    read_token,
)

__all__ = ["MAX_BODY", "MAX_CONTEXT_KEY", "MAX_DEPTH", "MAX_NAME", "NEVER_FROM_AN_ALERT", "RETRY_AFTER", "TOKEN_ENV",
           "TOKEN_FILE_ENV", "AlertGroup", "BadGroup", "Group", "Job", "JobLauncher", "JobQueue", "Launched",
           "QueueFull", "Serve", "configure_logging", "context", "incident_id", "parse_group", "read_token"]

RETRY_AFTER = 60  # seconds a caller is asked to wait when the queue is full (Alertmanager retries on 5xx)
log = logging.getLogger("irkit.serve")


class _Plain(logging.Formatter):
    """``2026-12-07T03:12:05Z INFO run done incident=ALERT-... job=... verdict=...``: the message, then each
    field as key=value, every control character of the alert's text removed (it is written by whoever posts)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={terminal(v)!s}" if " " not in str(v) else f"{k}={terminal(v)!r}"
                          for k, v in getattr(record, "fields", {}).items())
        at = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{at} {record.levelname} {terminal(record.getMessage())} {fields}".rstrip()


class _Json(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``event`` and the fields (json.dumps escapes what it must)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                           "level": record.levelname, "event": record.getMessage(),
                           **getattr(record, "fields", {})}, default=str)


def configure_logging(form: str = "plain", stream: Any = None) -> logging.Handler:
    """irkit serve's log lines (``irkit.serve`` at INFO) to stderr, as plain lines or JSON lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Json() if form == "json" else _Plain())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


def _say(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"fields": fields})


class Serve:
    """The receiver and its workers: ``Serve(...).start()``, then ``stop()``."""

    def __init__(self, *, token: str, config_path: str = "", outputs: str | Path = "outputs",
                 state_dir: str | Path = ".irkit-serve", listen: tuple[str, int] = ("127.0.0.1", 9095),
                 max_runs: int = 2, firing_phases: str = FIRING_PHASES, resolved_phases: str = RESOLVED_PHASES,
                 start_run: Callable[..., Any] | None = None, max_queued: int = 100) -> None:
        if not 0 <= max_runs <= 16:
            raise ParameterError("--max-runs must be 0 to 16 (0: only queue, run nothing)")
        if not 1 <= max_queued <= 10_000:
            raise ParameterError("--max-queued must be 1 to 10000")
        runner.parse_phases(firing_phases)
        runner.parse_phases(resolved_phases)
        self.token, self.config_path = token, config_path
        self.outputs: str | Path = str(outputs) if is_remote(outputs) else Path(outputs)  # s3://: not a path
        self.firing_phases, self.resolved_phases = firing_phases, resolved_phases
        self.queue = JobQueue(Path(state_dir), max_queued=max_queued)
        self._run = start_run or runner.run
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"irkit-serve-{i}", daemon=True)
                         for i in range(max_runs)]
        self.server = http.server.ThreadingHTTPServer(listen, _handler(self))
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Serve:
        threading.Thread(target=self.server.serve_forever, name="irkit-serve-http", daemon=True).start()
        for worker in self._workers:
            worker.start()
        return self

    def stop(self, wait: float = 5.0) -> None:
        """Stop taking requests and jobs; runs under way finish (or are requeued at the next start)."""
        self._stop.set()
        closing = getattr(self._run, "close", None)
        if callable(closing):  # a JobLauncher stops following its Jobs (they run on; the next start follows them)
            closing()
        self.server.shutdown()
        self.server.server_close()
        deadline = time.monotonic() + wait
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while not self._stop.is_set():
            job = self.queue.take(self._stop)
            if job is None:
                return
            _say(logging.INFO, "run started", incident=job.incident, job=job.id, phases=job.phases,
                 alert=job.alert.get("name", ""), status=job.status)
            try:
                result = self._run(job.incident, runner.parse_phases(job.phases), config_path=self.config_path,
                                   params=job.parameters, outputs=self.outputs,
                                   context=context(job))
                self.queue.finish(job, "done", str(result.run_dir))
                _say(logging.INFO, "run done", incident=job.incident, job=job.id, **_verdict(result))
            except IrkitError as exc:
                self.queue.finish(job, "failed", error=str(exc)[:500])
                _say(logging.ERROR, "run failed", incident=job.incident, job=job.id, error=str(exc)[:500])
            except Exception as exc:  # a worker must outlive any one run
                self.queue.finish(job, "failed", error=f"{type(exc).__name__}: {str(exc)[:400]}")
                _say(logging.ERROR, "run failed", incident=job.incident, job=job.id,
                     error=f"{type(exc).__name__}: {str(exc)[:400]}")


def _verdict(result: Any) -> dict[str, Any]:
    """What a finished run concluded, for its log line: phases, severity, recovery, where the evidence is."""
    summary = getattr(result, "summary", None)
    where = getattr(result, "location", "") or str(getattr(result, "run_dir", ""))
    if summary is None:  # a Job: its evidence is in the bucket, its verdict in its own summary.json
        return {"evidence": where}
    recovery = summary.recovery
    return {"ok": summary.ok, "severity": summary.severity.name if summary.severity else "not assessed",
            "recovered": None if recovery is None else recovery.recovered,
            "inconclusive": "; ".join(summary.inconclusive)[:300] or None, "evidence": where}


def _handler(serve: Serve) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "irkit-serve"
        timeout = 10  # a client that sends its body slowly is cut off

        def _answer(self, code: int, body: Mapping[str, Any], retry_after: int = 0) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            if retry_after:
                self.send_header("Retry-After", str(retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/healthz":
                self._answer(404, {"error": "POST alert groups to /alerts; GET /healthz"})
                return
            self._answer(200, {"ok": True, "jobs": serve.queue.counts(),
                               **({"damaged_state": serve.queue.damaged} if serve.queue.damaged else {})})

        def do_POST(self) -> None:
            if self.path != "/alerts":
                self._answer(404, {"error": "POST alert groups to /alerts"})
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {serve.token}".encode()):
                _say(logging.WARNING, "alert refused: no valid bearer token", client=self.client_address[0])
                self._answer(401, {"error": "a bearer token is required (the receiver's http_config authorization)"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._answer(411, {"error": "Content-Length is required"})
                return
            if not 0 <= length <= MAX_BODY:
                self._answer(413, {"error": f"the body is over {MAX_BODY} bytes"})
                return
            try:
                group = parse_group(self.rfile.read(length), serve.firing_phases, serve.resolved_phases)
            except (BadGroup, ParameterError) as exc:
                _say(logging.WARNING, "alert refused", reason=str(exc)[:300])
                self._answer(400, {"error": str(exc)})
                return
            try:
                job, new = serve.queue.add(group)
            except QueueFull as exc:
                _say(logging.WARNING, "alert refused: the queue is full", group=group.key[:80], status=group.status)
                self._answer(503, {"error": f"{exc}; try again later"}, retry_after=RETRY_AFTER)
                return
            _say(logging.INFO, "alert received", incident=job.incident, job=job.id, alert=group.name,
                 status=group.status, phases=job.phases, queued=new)
            self._answer(202, {"incident": job.incident, "job": job.id,
                               "status": "queued" if new else f"a run for this group is {job.state} already"})

        def log_message(self, *args: Any) -> None:
            pass  # requests are recorded as jobs; the access log would print tokens' absence, not evidence

    return Handler
