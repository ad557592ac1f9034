"""Diagnosis (playbook 2.x): what the investigation observed, turned into ranked findings.

Pure: :func:`diagnose` takes :class:`Observations` (plain rows, as the phase recorded
them) and the configuration, and returns findings, causes before symptoms. Importing it
loads no client. Each rule below is one paragraph; ``tests/rules/test_diagnosis.py``
holds a decision table with a row per rule and per boundary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from irkit.config import DEFAULTS, Config
from irkit.rules import kinds
from irkit.rules.kinds import Finding, Kind, rank
from irkit.rules.names import belongs_to, replicaset_owner, workload_named

__all__ = ["OVERLOAD_FACTOR", "RECENT_DEPLOY_MINUTES", "RECENT_RESTART_SECONDS", "Observations", "Targets", "diagnose"]

Row = Mapping[str, Any]
RECENT_DEPLOY_MINUTES = 24 * 60  # a revision deployed within a day that crashloops is the suspect


@dataclass(frozen=True)
class Targets:
    """What diagnosis needs of the configuration: names and thresholds."""

    deployments: tuple[str, ...] = DEFAULTS.deployments
    statefulsets: tuple[str, ...] = (DEFAULTS.postgres_statefulset, DEFAULTS.redis_statefulset)
    containers: Mapping[str, str] = field(default_factory=lambda: {
        DEFAULTS.backend_deployment: DEFAULTS.backend_container,
        DEFAULTS.frontend_deployment: DEFAULTS.frontend_container})
    error_ratio_moderate: float = DEFAULTS.error_ratio_moderate
    latency_p95_slow_seconds: float = DEFAULTS.latency_p95_slow_seconds
    saturation_ratio: float = DEFAULTS.pg_saturation_ratio
    idle_transaction_seconds: float = DEFAULTS.pg_idle_transaction_seconds

    @classmethod
    def from_config(cls, cfg: Config) -> Targets:
        return cls(deployments=tuple(cfg.deployments), statefulsets=(cfg.postgres_statefulset, cfg.redis_statefulset),
                   containers={cfg.backend_deployment: cfg.backend_container,
                               cfg.frontend_deployment: cfg.frontend_container},
                   error_ratio_moderate=cfg.error_ratio_moderate,
                   latency_p95_slow_seconds=cfg.latency_p95_slow_seconds,
                   saturation_ratio=cfg.pg_saturation_ratio,
                   idle_transaction_seconds=cfg.pg_idle_transaction_seconds)


@dataclass(frozen=True)
class Observations:
    """What phase 2 saw, as the rows it recorded (docs/records.md has the columns)."""

    lock_roots: Sequence[Row] = ()
    lock_cycles: Sequence[Sequence[int]] = ()
    long_running: Sequence[Row] = ()
    saturation: Row | None = None
    unhealthy_pods: Sequence[Row] = ()
    rollout_history: Sequence[Row] = ()
    error_ratio_now: Sequence[Row] = ()  # service, error_ratio
    latency_p95_now: Sequence[Row] = ()  # service, seconds
    endpoints: Sequence[Row] = ()
    problems: Sequence[Row] = ()  # step, error: what could not be asked
    lock_edges: Sequence[Row] = ()  # blocked_pid, blocking_pid, blocked_query, wait_seconds
    connections: Sequence[Row] = ()  # application_name, state, sessions
    logs: Sequence[Row] = ()  # deployment, container, pods, text (current and previous containers)
    warning_events: Sequence[Row] = ()  # reason, object, message, count
    request_rate: Sequence[Row] = ()  # service, rps_now, rps_baseline
    workloads: Sequence[Row] = ()  # kind, name, desired, ready
    database_logs: Sequence[Row] = ()  # the database pods' logs, folded like logs
    config_changes: Sequence[Row] = ()  # kind, name, changed_at, manager
    cronjobs: Sequence[Row] = ()  # name, schedule, suspend, last_schedule, command
    services: Sequence[Row] = ()  # name, selector, port, target_port, ready, not_ready
    table_scans: Sequence[Row] = ()  # tablename, seq_scans, rows_per_scan, live_tuples, index_scans
    top_statements: Sequence[Row] = ()  # query, calls, mean_ms, total_ms, rows (pg_stat_statements)
    deadlocks: int | None = None  # pg_stat_database.deadlocks
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def diagnose(obs: Observations, targets: Targets) -> list[Finding]:
    """Every finding the observations support, ranked: causes first."""
    symptoms = _symptoms(obs, targets)
    pods = _pods(obs, targets)
    found = [*_locks(obs), *_broken_deadlocks(obs), *_ddl(obs), *_queries(obs), *_saturation(obs, targets),
             *pods, *_scheduled_actors(obs, pods), *_unschedulable(obs, targets), *_quota(obs, targets), *_credentials(obs, targets, symptoms),
             *_cache_refusing(obs, targets, symptoms), *_missing_indexes(obs, symptoms),
             *_unrouted(obs, targets, symptoms),
             *_dependencies(obs, targets, symptoms),
             *_load(obs, targets, symptoms), *symptoms]
    found += [Finding(Kind.SOURCE_UNAVAILABLE, p["step"], p["error"]) for p in obs.problems]
    return rank(found)


def _locks(obs: Observations) -> list[Finding]:
    # A lock root blocks others; the more sessions behind it, the higher it ranks.
    out = [Finding(Kind.LOCK_ROOT, f"pid {root['pid']}",
                   f"{root.get('state')} session blocks {root['blocked_count']} session(s): "
                   f"{(root.get('query') or '')[:120]}",
                   kinds.LockRoot(pid=int(root["pid"]), blocked_count=int(root["blocked_count"]),
                            state=str(root.get("state") or ""), query=str(root.get("query") or ""),
                            impact=float(root["blocked_count"])))
           for root in obs.lock_roots]
    out += [Finding(Kind.DEADLOCK, "pids " + ",".join(map(str, cycle)), "sessions wait on each other",
                    kinds.Deadlock(pids=tuple(int(pid) for pid in cycle))) for cycle in obs.lock_cycles]
    return out


_DEADLOCK_QUERY = re.compile(r"Process (\d+): (.+)$")


def _broken_deadlocks(obs: Observations) -> list[Finding]:
    # PostgreSQL breaks a deadlock itself (one transaction is rolled back): nothing to terminate. What the
    # responder needs is the two queries, from the database's log, to fix the order the application locks in.
    text = "\n".join(str(row.get("text", "")) for row in obs.database_logs)
    if "deadlock detected" not in text:
        return []
    queries: dict[str, str] = {}
    for line in text.splitlines():
        match = _DEADLOCK_QUERY.search(line.strip())
        if match:
            queries.setdefault(match.group(1), match.group(2).strip())
    count = text.count("deadlock detected")
    counter = f"; pg_stat_database.deadlocks = {obs.deadlocks}" if obs.deadlocks is not None else ""
    detail = (f"PostgreSQL detected and broke {count} deadlock(s){counter}: "
              + " / ".join(f"pid {pid}: {query[:90]}" for pid, query in list(queries.items())[:2]))
    return [Finding(Kind.DEADLOCK, "broken by PostgreSQL", detail,
                    kinds.Deadlock(queries=tuple(queries.values())[:4], count=count, deadlocks=obs.deadlocks,
                             impact=count))]


# Statements that take an ACCESS EXCLUSIVE lock (or one almost as strong): queued behind a reader, they make
# every later query on the table queue behind them.
_DDL = re.compile(r"^\s*(ALTER\s+TABLE|DROP\s+(TABLE|INDEX)|TRUNCATE|LOCK\s+TABLE|REINDEX|VACUUM\s+FULL|CLUSTER|"
                  r"CREATE\s+(UNIQUE\s+)?INDEX(?!\s+CONCURRENTLY))", re.IGNORECASE)


def _ddl(obs: Observations) -> list[Finding]:
    # A DDL statement that waits on a lock while others wait on it: the root holding the table is the cause, but
    # cancelling the queued DDL is the safe first step (it releases everything queued behind it at once).
    behind: dict[int, int] = {}
    for edge in obs.lock_edges:
        behind[int(edge["blocking_pid"])] = behind.get(int(edge["blocking_pid"]), 0) + 1
    out, seen = [], set()
    for edge in obs.lock_edges:
        pid = int(edge["blocked_pid"])
        query = str(edge.get("blocked_query") or "")
        if pid in seen or not _DDL.match(query) or not behind.get(pid):
            continue
        seen.add(pid)
        out.append(Finding(Kind.DDL_QUEUED, f"pid {pid}",
                           f"{' '.join(query.split())[:100]} waits for pid {edge['blocking_pid']} and {behind[pid]} "
                           "session(s) queue behind it",
                           kinds.DdlQueued(pid=pid, blocked_by=int(edge["blocking_pid"]), queued_behind=behind[pid],
                                     query=query, impact=behind[pid])))
    return out


def _queries(obs: Observations) -> list[Finding]:
    # The rows are already past the notebook's older_than_seconds bound; a query waiting on a lock is a
    # waiter, not a cause of its own.
    return [Finding(Kind.LONG_RUNNING_QUERY, f"pid {row['pid']}",
                    f"active for {row['age_seconds']:.0f} s: {(row.get('query') or '')[:120]}",
                    kinds.LongRunningQuery(pid=int(row["pid"]), age_seconds=float(row["age_seconds"]),
                                     query=str(row.get("query") or ""), impact=float(row["age_seconds"])))
            for row in obs.long_running
            if row.get("state") == "active" and (row.get("wait_event_type") or "") != "Lock"]


# pg_stat_activity's states of a session that holds a connection and does nothing.
IDLE_STATES = ("idle", "idle in transaction", "idle in transaction (aborted)")


def _saturation(obs: Observations, targets: Targets) -> list[Finding]:
    sat = obs.saturation
    if not sat or not sat.get("max_connections"):
        return []
    usable = max(1, sat["max_connections"] - sat.get("reserved", 0))
    ratio = sat["sessions"] / usable
    if ratio < targets.saturation_ratio:
        return []
    evidence = kinds.DbSaturation(impact=ratio)
    detail = f"{sat['sessions']} of {usable} usable connections in use"
    # Name the application whose idle connections fill the pool, when one holds most of them: idle, or idle in a
    # transaction it never ends (that one holds its locks too).
    idle: dict[str, int] = {}
    in_transaction: dict[str, int] = {}
    for row in obs.connections:
        state, app = str(row.get("state")), str(row.get("application_name") or "")
        if app and state in IDLE_STATES:
            # Idle in a transaction for a moment is a busy application between two statements; for a minute, a
            # transaction it does not end.
            if state != "idle" and float(row.get("oldest_state_seconds") or 0) < targets.idle_transaction_seconds:
                continue
            idle[app] = idle.get(app, 0) + int(row["sessions"])
            if state != "idle":
                in_transaction[app] = in_transaction.get(app, 0) + int(row["sessions"])
    if idle:
        app, count = max(idle.items(), key=lambda item: item[1])
        if count >= 0.5 * sat["sessions"]:
            open_ = in_transaction.get(app, 0)
            evidence = kinds.DbSaturation(application=app, idle_sessions=count, idle_in_transaction=open_,
                                    deployment=workload_named(app, targets.deployments), impact=ratio)
            detail += (f"; {count} of them are idle connections of application '{app}'"
                       + (f" ({open_} idle in a transaction they never end)" if open_ else ""))
    return [Finding(Kind.DB_SATURATION, "postgres", detail, evidence)]


def _workload_of(pod: Row, targets: Targets) -> str:
    name = str(pod["pod"])
    for workload in (*targets.deployments, *targets.statefulsets):
        if belongs_to(name, workload, str(pod.get("owner") or "")):
            return workload
    return str(pod.get("owner") or name)


RECENT_RESTART_SECONDS = 3600  # a container that restarted longer ago than this is history, not a finding


def _failure(pod: Row, now: datetime) -> str | None:
    """How a pod is failing right now, or None: a restart long ago is not a failure."""
    reason = pod.get("waiting_reason") or ""
    if reason == "CrashLoopBackOff":
        return "crashloop"
    if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
        return "image-pull"
    terminated = pod.get("last_terminated_at")
    recent = terminated is not None and (now - _moment(terminated)).total_seconds() < RECENT_RESTART_SECONDS
    if pod.get("last_termination_reason") == "OOMKilled" and recent:
        return "oom-killed"
    if not pod.get("all_ready") and pod.get("phase") in ("Running", "Pending"):
        return None if _starting(pod) else "not-ready"
    return None


STARTING_SECONDS = 300  # a pod this young that never failed is starting (a rollout, a scale-up), not failing


def _starting(pod: Row) -> bool:
    """A pod being created or started, as every rollout and scale-up makes them: young, never restarted, and
    waiting for nothing but its own creation."""
    age = pod.get("age_seconds")
    # Pending while it is created; running but not yet ready only for its first minute (a readiness probe that
    # never passes is a failure to see, right after a deploy most of all).
    young = STARTING_SECONDS if pod.get("phase") == "Pending" else 60
    return (isinstance(age, int | float) and age < young and not pod.get("restarts")
            and pod.get("waiting_reason") in (None, "ContainerCreating", "PodInitializing")
            and not pod.get("last_termination_reason"))


def _said(pod: Row, how: str) -> str:
    """How a pod fails in words, with the kubelet's reason for its last termination when it says more than
    the state (a crashloop whose container is OOMKilled at start, a command that cannot start: StartError)."""
    ended = pod.get("last_termination_reason")
    return f"{how} (last terminated: {ended})" if how == "crashloop" and ended and ended != "Error" else how


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _moment_or_none(value: Any) -> datetime | None:
    """A recorded time, or None where the row has none (missing, empty, or pandas' NaT)."""
    return None if value is None or str(value) in ("", "NaT") else _moment(value)


def _pods(obs: Observations, targets: Targets) -> list[Finding]:
    failing: dict[str, list[tuple[Row, str]]] = {}
    unschedulable = {str(e.get("object", "")).split("/")[-1] for e in obs.warning_events
                     if e.get("reason") == "FailedScheduling"}
    for pod in obs.unhealthy_pods:
        how = _failure(pod, obs.now) if pod["pod"] not in unschedulable else None
        if how is not None:
            failing.setdefault(_workload_of(pod, targets), []).append((pod, how))
    out: list[Finding] = []
    for workload, pods in failing.items():
        if workload in targets.statefulsets:  # the database or the cache: everything else depends on it
            full = next(((pod, line) for pod, _ in pods if (line := _disk_full(obs, str(pod["pod"])))), None)
            if full is not None:  # a restart frees no disk: the finding says so, and the plan restarts nothing
                out.append(Finding(Kind.VOLUME_FULL, workload,
                                   f"pod {full[0]['pod']} of {workload}: its disk is full ({full[1][:160]}); a restart "
                                   "frees nothing: grow its volume (or free space on it), then it starts",
                                   kinds.VolumeFull(statefulset=workload, pod=str(full[0]["pod"]), line=full[1][:300],
                                                    impact=len(pods))))
                continue
            broken = _broken_spec(obs, workload, pods)
            if broken is not None:  # PostgreSQL refusing to run as root, a command or image that cannot run
                out.append(broken)
                continue
            pod, how = pods[0]
            out.append(Finding(Kind.DATASTORE_DOWN, workload, f"pod {pod['pod']} of {workload} is {how} "
                                                               f"({pod.get('restarts', 0)} restarts)",
                               kinds.DatastoreDown(statefulset=workload, pod=str(pod["pod"]), failure=how,
                                             impact=len(pods))))
            continue
        revision = _bad_revision(obs, workload, pods)
        if revision is not None:
            out.append(revision)
            continue
        broken = _broken_spec(obs, workload, pods)
        if broken is not None:
            out.append(broken)
            continue
        for pod, how in pods:
            out.append(_pod_finding(pod, how, workload, targets, _last_error(obs, pod["pod"])))
    return out


# Why a container cannot start or be created, when the reason is in its own spec or image, in the words of the
# software that says it: runc and crun (exec: "wge": executable file not found in $PATH; stat ...: no such file or
# directory; permission denied), containerd's and CRI-O's pull errors (pull access denied, repository does not exist
# or may require authorization, manifest unknown, failed to resolve reference "...": ...: not found), the kubelet's
# CreateContainerConfigError (secret "x" not found, couldn't find key K in Secret ns/x). A registry's 5xx, a timeout
# or a rate limit is none of these: kubelet retries those, and they pass.
_RUNTIME_SPEC = re.compile(
    r'exec: "[^"\n]{1,200}": (?P<command>executable file not found in \$PATH|stat [^:\n]{1,200}: no such file or '
    r'directory|permission denied)|(?P<image>pull access denied|repository does not exist or may require authorization|'
    r'manifest unknown|failed to resolve reference "[^"\n]{1,300}": [^\s]{1,300}: not found)|'
    r'(?P<config>(secret|configmap) "[^"\n]{1,253}" not found|couldn\'t find key \S{1,253} in (Secret|ConfigMap))')
# A setting the application refuses to start without, in the words of the software that prints it: Spring's
# placeholder resolution, PostgreSQL refusing to run as root, CPython's os.environ lookup (KeyError: 'NAME' raised
# from os.py's __getitem__, both in the same traceback).
# Anchored to the line shapes those programs print (a Java exception's message, PostgreSQL's own first line), so a
# client cannot put the words into a log (a query's text, a value) and make a cause of them.
_APP_SPEC = re.compile(r"""(?P<setting>(?:Exception|Error): Could not resolve placeholder '[^'\n]{1,200}'|"""
                       r"""^"root" execution of the PostgreSQL server is not permitted\.)""")
_PY_ENVIRON = re.compile(r"""(<frozen os>|/os\.py)", line \d+, in __getitem__[ \t]*\n(?:[^\n]{0,200}\n){0,2}?[ \t]*"""
                         r"""KeyError: '([A-Z][A-Z0-9_]{0,100})'""")
_SPEC_FIX = {"command": "the container's command or entrypoint", "image": "the image reference or its pull secret",
             "config": "the Secret or ConfigMap the pod references", "setting": "the setting it names"}
# Reasons that say so alone (the container cannot be created: its spec names what does not exist). StartError and
# ContainerCannotRun need the runtime's words above: many are a node's runc or cgroup failure a new pod escapes.
_SPEC_REASONS = {"CreateContainerConfigError": "config", "InvalidImageName": "image"}


def _spec_line(obs: Observations, pod: Row) -> tuple[str, str] | None:
    """The line that says a pod cannot run for a reason in its spec or image, and what to fix; None if nothing
    says so (then the pod is judged as it fails: a restart may help)."""
    name = str(pod["pod"])
    if pod.get("last_termination_reason") == "OOMKilled":
        return None  # the kernel's word stands: the memory limit, not the spec's text
    said = [str(pod.get(k) or "") for k in ("last_termination_message", "waiting_message")]
    said += [str(e.get("message") or "") for e in obs.warning_events
             if str(e.get("object", "")).split("/")[-1] == name]
    for text in said:
        if match := _RUNTIME_SPEC.search(text):  # from the words that explain it: the wrapping says less
            return text[match.start():].strip()[:300], _SPEC_FIX[next(k for k, v in match.groupdict().items() if v)]
    reason = pod.get("waiting_reason") if pod.get("waiting_reason") in _SPEC_REASONS else None
    for row in [*obs.logs, *obs.database_logs]:
        if name in (row.get("pods") or ()):
            text = str(row.get("text", ""))
            if match := _PY_ENVIRON.search(text):
                return f"KeyError: '{match.group(2)}' (os.environ)", _SPEC_FIX["setting"]
            lines = [line.strip() for line in text.splitlines() if _APP_SPEC.search(line.strip())]
            if lines:
                return lines[-1][:300], _SPEC_FIX["setting"]
    if reason:  # the kubelet's reason alone: the container could not be created or started
        return f"{reason}: {next((t for t in said if t.strip()), '')}".strip(": ")[:300], _SPEC_FIX[_SPEC_REASONS[reason]]
    return None


def _broken_spec(obs: Observations, workload: str, pods: list[tuple[Row, str]]) -> Finding | None:
    """Pods that cannot run for a reason in their spec or image: a new pod fails the same way, so the finding
    names the explaining line and what to fix, and the plan restarts nothing."""
    explained = [(pod, said) for pod, _ in pods if (said := _spec_line(obs, pod)) is not None]
    if not explained:
        return None
    (pod, (line, fix)) = explained[-1]
    names = tuple(str(p["pod"]) for p, _ in explained)
    return Finding(Kind.BROKEN_SPEC, workload,
                   f"{len(names)} pod(s) cannot run for a reason in their spec or image: {line}; a new pod fails the "
                   f"same way, so no restart is planned: fix {fix} (kubectl describe pod {pod['pod']})",
                   kinds.BrokenSpec(deployment=workload, pods=names, line=line, fix=fix, impact=len(names)))


# ENOSPC as the C library words it (strerror), which PostgreSQL ("could not write to file ...: No space left on
# device"), Redis ("Write error saving DB on disk: No space left on device") and nearly every program print.
_NO_SPACE = re.compile(r"(\b(PANIC|FATAL|ERROR|LOG):\s+could not (write|extend|create|open|fsync|rename)[^\n]{0,300}|"
                       r"Write error (saving DB on disk|writing append only file)[^\n]{0,100}|"
                       r"# (Error|Failed) [^\n]{0,200}): No space left on device")


def _disk_full(obs: Observations, pod: str) -> str:
    """The line of a pod's logs (its previous container's too) that says its disk is full, or ""."""
    return _last_line([*obs.logs, *obs.database_logs], pod, lambda line: bool(_NO_SPACE.search(line)) and
                      "STATEMENT:" not in line and "invalid input syntax" not in line)


def _last_line(rows: Sequence[Row], pod: str, keep: Callable[[str], bool]) -> str:
    """The last line ``keep`` accepts in the newest of ``rows`` (folded logs) that holds ``pod``'s text and has
    one, stripped; "" when none does. The previous containers' logs come last: they are read first."""
    for row in reversed(list(rows)):
        if pod in (row.get("pods") or ()):
            lines = [line.strip() for line in str(row.get("text", "")).splitlines() if keep(line)]
            if lines:
                return lines[-1]
    return ""


_ERROR_LINE = re.compile(r"\b(FATAL|ERROR|PANIC|panic|Exception|Traceback|refused|cannot|could not)\b")


def _last_error(obs: Observations, pod: str) -> str:
    """The last line of a pod's logs (its previous container's first) that says what went wrong: without a
    recent deploy, a crashloop is judged from what it logged before dying."""
    return _last_line(obs.logs, pod, lambda line: bool(_ERROR_LINE.search(line)))[:160]


def _bad_revision(obs: Observations, workload: str, pods: list[tuple[Row, str]]) -> Finding | None:
    """A revision deployed within a day whose own pods fail, however they fail, while an earlier revision
    exists to roll back to: the revision is the cause, and the plan is the rollback, not pod by pod."""
    history = [h for h in obs.rollout_history if h["deployment"] == workload]
    current = [h for h in history if h.get("current")]
    previous = [h for h in history if not h.get("current")]
    if not current or not previous:
        return None
    cur = current[-1]
    age = (obs.now - _moment(cur["created"])).total_seconds() / 60
    if age >= RECENT_DEPLOY_MINUTES:
        return None
    replicaset = str(cur.get("replicaset") or "")
    own = [(pod, how) for pod, how in pods if not replicaset or str(pod.get("owner") or "").endswith(replicaset)]
    if how_many := len(own):
        ways = sorted({_said(pod, how) for pod, how in own})
        return Finding(Kind.BAD_REVISION, workload,
                       f"revision {cur['revision']} ({cur['images']}) deployed {age:.0f} min ago fails in "
                       f"{how_many} pod(s): {', '.join(ways)}",
                       kinds.BadRevision(deployment=workload, revision=int(cur["revision"]), image=str(cur["images"]),
                                   previous_revision=int(previous[-1]["revision"]), age_minutes=age,
                                   failures=tuple(ways), impact=how_many))
    return None


# kubectl's verbs that write a Deployment's template (a CronJob that only reads it, get or rollout status, is no actor).
_WRITES = re.compile(r"\b(set image|set env|set resources|patch|apply|replace|edit|rollout undo|rollout restart|"
                     r"helm upgrade|helm install)\b")
ACTOR_RAN_BEFORE_SECONDS = 600  # a CronJob that ran this shortly before the template was written may have written it


def _scheduled_actors(obs: Observations, found: list[Finding]) -> list[Finding]:
    """A CronJob that writes the failing revision's pod template: the API server's managedFields name it as the
    template's last writer, or its command names the Deployment and it ran shortly before the write. Rolling
    back alone lasts until it runs again; suspending it is the first step."""
    failing = {f.evidence.deployment or f.subject: f for f in found if isinstance(f.evidence, kinds.BadRevision)}
    out = []
    for workload in obs.workloads:
        name = str(workload.get("name") or "")
        if name not in failing:
            continue
        writer = str(workload.get("template_writer") or "")
        written_at = _moment_or_none(workload.get("template_written_at"))
        for job in obs.cronjobs:
            if job.get("suspend"):
                continue
            command = str(job.get("command") or "")
            ran_at = _moment_or_none(job.get("last_schedule"))
            names_it = _WRITES.search(command) and re.search(
                rf"(?<![\w.-])(deployment|deployments|deploy)[/ ]{re.escape(name)}(?![\w.-])", command)
            just_before = (written_at is not None and ran_at is not None
                           and 0 <= (written_at - ran_at).total_seconds() <= ACTOR_RAN_BEFORE_SECONDS)
            if writer != job.get("name") and not (names_it and just_before):
                continue
            minutes = (obs.now - written_at).total_seconds() / 60 if written_at is not None else None
            how = ("managedFields name it as the last writer of the template" if writer == job.get("name") else
                   f"its command names deployment/{name} and it ran "
                   f"{(written_at - ran_at).total_seconds():.0f} s before the template was written")  # type: ignore[operator]
            out.append(Finding(Kind.SCHEDULED_ACTOR, f"cronjob/{job['name']}",
                               f"CronJob {job['name']} ({job.get('schedule')}) writes deployment/{name}'s pod "
                               f"template: {how}; the failing revision came from it, so a rollback lasts until it "
                               "runs again: suspend it first",
                               kinds.ScheduledActor(cronjob=str(job["name"]), deployment=name,
                                                    schedule=str(job.get("schedule") or ""), manager=writer,
                                                    written_minutes=minutes, command=command[:300],
                                                    impact=failing[name].evidence.impact)))
    return out


def _pod_finding(pod: Row, how: str, workload: str, targets: Targets, logged: str = "") -> Finding:
    if how == "oom-killed":
        return Finding(Kind.OOM_KILLED, workload, f"pod {pod['pod']} was OOMKilled ({pod['restarts']} restarts)",
                       kinds.OomKilled(deployment=workload, pod=str(pod["pod"]), impact=float(pod["restarts"]),
                                 container=targets.containers.get(workload, ""),
                                 memory_limit=str(pod.get("memory_limit") or "")))
    if how == "crashloop":
        said = f"; its log: {logged}" if logged else ""
        return Finding(Kind.CRASHLOOP, pod["pod"], f"CrashLoopBackOff, {pod['restarts']} restarts{said}",
                       kinds.Crashloop(impact=float(pod["restarts"]), deployment=workload, log=logged))
    if how == "image-pull":
        return Finding(Kind.IMAGE_PULL, pod["pod"], f"cannot pull the image ({pod.get('waiting_reason')})")
    return Finding(Kind.PODS_NOT_READY, pod["pod"], f"{pod.get('phase')} {pod.get('waiting_reason') or ''}".strip())


# The scheduler's own reasons in a FailedScheduling message (kube-scheduler's predicates), each with what a person
# changes: more of a resource, a node condition or a toleration, a selector or the nodes' labels, a volume's zone.
_SCHEDULER_WHY = (
    (re.compile(r"Insufficient [\w./-]+", re.IGNORECASE), "add nodes with that resource or lower the requests"),
    (re.compile(r"untolerated taint \{?node\.kubernetes\.io/(disk|memory|pid)-pressure", re.IGNORECASE),
     "the nodes are under pressure (the kubelet tainted them): free the nodes' disk, memory or pids, or add nodes"),
    (re.compile(r"untolerated taint", re.IGNORECASE),
     "the nodes carry a taint the pods do not tolerate: add the toleration, or schedule them where they may run"),
    (re.compile(r"didn't match Pod's node affinity/selector|node\(s\) didn't match node selector", re.IGNORECASE),
     "no node matches the pods' node selector or affinity: fix the selector, or label the nodes"),
    (re.compile(r"volume node affinity conflict|didn't find available persistent volumes", re.IGNORECASE),
     "the pods' volumes cannot be reached from any free node (a zone): schedule in the volume's zone"),
)


_ROUTINE_TAINTS = re.compile(r"\d+ node\(s\) had untolerated taint \{node(-role\.kubernetes\.io/(control-plane|master)|"
                             r"\.kubernetes\.io/unschedulable): [^}]{0,100}\}")


def _unschedulable(obs: Observations, targets: Targets) -> list[Finding]:
    # FailedScheduling: no restart or rollback helps. The scheduler's own words say why (a resource no node has
    # free, a taint, a selector, a volume's zone): quoted, and what to change follows from them.
    said: dict[str, str] = {}
    pending = {str(p["pod"]) for p in obs.unhealthy_pods if p.get("phase") == "Pending"}
    for event in obs.warning_events:
        message = str(event.get("message", ""))
        pod = str(event.get("object", "")).split("/")[-1]
        # Taints every cluster has (its control plane, a cordoned node) are no reason: the rest of the message is.
        reasons = _ROUTINE_TAINTS.sub("", message)
        if (event.get("reason") == "FailedScheduling" and pod in pending
                and any(why.search(reasons) for why, _ in _SCHEDULER_WHY)):
            said[pod] = message.split(". preemption:")[0].strip()[:200]
    by_workload: dict[str, list[str]] = {}
    for pod in said:  # each pod once, however many events it has
        by_workload.setdefault(_workload_of({"pod": pod}, targets), []).append(pod)
    out = []
    for workload, names in by_workload.items():
        words = said[names[-1]]
        fix = "; ".join(dict.fromkeys(fix for why, fix in _SCHEDULER_WHY if why.search(_ROUTINE_TAINTS.sub("", words))))
        out.append(Finding(Kind.UNSCHEDULABLE, workload, f"{len(names)} pod(s) cannot be scheduled; the scheduler: "
                                                         f"{words}; {fix}",
                           kinds.Unschedulable(pods=tuple(names), impact=len(names))))
    return out


# A ResourceQuota refusing a controller's new pod, in the API server's words as the ReplicaSet (or Job) controller
# reports them in its FailedCreate event: 'pods "x" is forbidden: exceeded quota: compute, requested: ..., used:
# ..., limited: ...'.
_QUOTA = re.compile(r'is forbidden: exceeded quota: ([\w.-]{1,253}), requested: ([^\n]{1,200}?), used: ([^\n]{1,200}?), '
                    r"limited: ([^\n]{1,200})")


def _quota(obs: Observations, targets: Targets) -> list[Finding]:
    """A quota that refuses the replacement or new pods of a workload: no restart, rollback or scale-up can make
    them; a person raises the quota or frees what it counts."""
    refused: dict[str, tuple[str, re.Match[str]]] = {}
    for event in obs.warning_events:
        message = str(event.get("message", ""))
        match = _QUOTA.search(message) if event.get("reason") == "FailedCreate" else None
        if match:
            owner = str(event.get("object", "")).split("/")[-1]
            refused[replicaset_owner(owner, targets.deployments)] = (owner, match)
    short = {str(w.get("name")): int(w.get("ready") or 0) < int(w.get("desired") or 0) for w in obs.workloads}
    refused = {w: found for w, found in refused.items() if short.get(w, True)}  # stale: it has its pods by now
    return [Finding(Kind.QUOTA_EXCEEDED, workload,
                    f"ResourceQuota {match.group(1)} refuses its new pods (requested {match.group(2)}, used "
                    f"{match.group(3)}, limited {match.group(4)}); raise the quota or free what it counts (kubectl "
                    f"describe resourcequota {match.group(1)})",
                    kinds.QuotaExceeded(deployment=workload, quota=match.group(1), requested=match.group(2)[:120],
                                        used=match.group(3)[:120], limited=match.group(4)[:120]))
            for workload, (_, match) in refused.items()]


# What the logs say about dependencies. A line counts when it reports a failure (ERROR/FATAL/WARN, or a
# failure word) and names the dependency; three such lines make the finding, if requests are suffering.
_FAILURE = re.compile(r"\b(error|fatal|fail(ed|ure)?|timed?\s*out|timeout|refused|unavailable|429|5\d\d)\b",
                      re.IGNORECASE)
# "rpc" as a JSON-RPC provider says it, not gRPC's own status line ("rpc error: code = Unavailable desc = ...",
# printed by grpc-go for any call between two services).
# A blockchain node provider in the words its clients use: not any "provider" (OAuth, payments, identity, config),
# which is an upstream like any other.
_PROVIDER = re.compile(r"\b(blockchain|rpc(?! error: code = )|json-?rpc|web3|ethers|infura|alchemy|quicknode|eth_\w+)\b",
                       re.IGNORECASE)
_TIMEOUT = re.compile(r"\b(timed?\s*out|timeout|ETIMEDOUT|deadline exceeded)\b", re.IGNORECASE)
# PostgreSQL's own words for a statement it cancelled (ERROR:  canceling statement due to lock timeout / statement
# timeout, SQLSTATE 55P03 / 57014), relayed by any client library: the database enforcing its own limit while
# it waits on itself (the lock findings explain why), not an upstream call timing out.
_DATABASE_TIMEOUT = re.compile(r"canceling statement due to (lock|statement) timeout|\b(55P03|57014)\b",
                               re.IGNORECASE)
_MIN_LINES = 3


def _dependencies(obs: Observations, targets: Targets, symptoms: list[Finding]) -> list[Finding]:
    if not symptoms:
        return []  # errors in logs with every signal healthy are noise, not an incident's cause
    out = []
    for deployment in targets.deployments:
        lines = [line for row in obs.logs if row.get("deployment") == deployment
                 for line in str(row.get("text", "")).splitlines()
                 if _FAILURE.search(line) and not _DATABASE_TIMEOUT.search(line)]
        provider = [line for line in lines if _PROVIDER.search(line)]
        upstream = [line for line in lines if _TIMEOUT.search(line) and not _PROVIDER.search(line)]
        if len(provider) >= _MIN_LINES:
            out.append(Finding(Kind.PROVIDER_FAILING, deployment,
                               f"{len(provider)} log line(s) report the blockchain provider failing, e.g. "
                               f"{provider[-1].strip()[:140]}", kinds.Dependency(deployment=deployment, impact=len(provider))))
        if len(upstream) >= _MIN_LINES:
            out.append(Finding(Kind.UPSTREAM_TIMEOUT, deployment,
                               f"{len(upstream)} log line(s) report calls timing out, e.g. {upstream[-1].strip()[:140]}",
                               kinds.Dependency(deployment=deployment, impact=len(upstream))))
    return out


# PostgreSQL's own refusal of a password (FATAL, SQLSTATE 28P01), as every client library relays it: libpq and
# psycopg ('FATAL:  password authentication failed for user "app"'), asyncpg (InvalidPasswordError), JDBC and
# node-postgres. MySQL's "Access denied for user" and Redis's WRONGPASS are other software's words.
_AUTH_FAILED = re.compile(r'password authentication failed for user "([^"]{1,63})"|\b28P01\b')
CREDENTIALS_SECRET_MINUTES = 120  # a Secret written this recently is the rotation the pods missed


def _credentials(obs: Observations, targets: Targets, symptoms: list[Finding]) -> list[Finding]:
    """The database refusing the application's password while requests fail; with a Secret written since the
    trouble began (a rotation), the pods hold the old value until they restart."""
    if not symptoms:
        return []
    recent = sorted(((when, c) for c in obs.config_changes
                     if c.get("kind") == "Secret" and (when := _moment_or_none(c.get("changed_at"))) is not None
                     and (obs.now - when).total_seconds() < CREDENTIALS_SECRET_MINUTES * 60),
                    key=lambda pair: pair[0])
    out = []
    for deployment in targets.deployments:
        lines = [line.strip() for row in obs.logs if row.get("deployment") == deployment
                 for line in str(row.get("text", "")).splitlines() if _AUTH_FAILED.search(line)]
        if len(lines) < _MIN_LINES:
            continue
        user = next((m.group(1) for m in map(_AUTH_FAILED.search, lines) if m and m.group(1)), "")
        said = f"{len(lines)} log line(s): PostgreSQL refuses the password{f' of {user!r}' if user else ''}, e.g. " \
               f"{lines[-1][:140]}"
        if recent:
            when, secret = recent[-1]
            minutes = (obs.now - when).total_seconds() / 60
            manager = str(secret.get("manager") or "")
            said += (f"; Secret {secret['name']} was written {minutes:.0f} min ago"
                     f"{f' by {manager}' if manager else ''}: the pods still hold the old credentials")
            evidence = kinds.CredentialsRejected(deployment=deployment, user=user, secret=str(secret["name"]),
                                                 changed_minutes=minutes, manager=manager, line=lines[-1][:300],
                                                 impact=len(lines))
        else:
            said += "; no Secret changed recently: the password itself is wrong (fix it where it is kept)"
            evidence = kinds.CredentialsRejected(deployment=deployment, user=user, line=lines[-1][:300],
                                                 impact=len(lines))
        out.append(Finding(Kind.CREDENTIALS_REJECTED, deployment, said, evidence))
    return out


# Redis's own error replies, which every client relays with the prefix Redis sent (redis-py, ioredis' ReplyError,
# go-redis, Jedis' JedisDataException): the cache is up and answers, and refuses. Words only Redis uses.
_REDIS_REFUSAL = re.compile(r"\b(NOAUTH) Authentication required|\b(WRONGPASS) invalid username-password pair|"
                            r"\b(OOM) command not allowed when used memory > 'maxmemory'|"
                            r"\b(READONLY) You can't write against a read only replica|\b(MISCONF) Redis is configured to "
                            r"save RDB snapshots")
_REDIS_FIX = {"NOAUTH": "the application connects without the password Redis now requires",
              "WRONGPASS": "the application's Redis password is wrong",
              "OOM": "Redis is at maxmemory with a policy that refuses writes",
              "READONLY": "the application writes to a read-only replica (a failover moved the primary)",
              "MISCONF": "Redis refuses writes because its snapshot (RDB) fails"}


def _cache_refusing(obs: Observations, targets: Targets, symptoms: list[Finding]) -> list[Finding]:
    """Redis refusing the application's commands while requests fail. No step restarts anything: a restart
    of the cache drops its data and changes none of these (a password, a memory policy, a topology)."""
    if not symptoms:
        return []
    lines = [line.strip() for row in obs.logs for line in str(row.get("text", "")).splitlines()
             if _REDIS_REFUSAL.search(line)]
    if len(lines) < _MIN_LINES:
        return []
    match = _REDIS_REFUSAL.search(lines[-1])
    reply = next((g for g in match.groups() if g), "") if match else ""
    cache = targets.statefulsets[-1] if targets.statefulsets else "redis"
    return [Finding(Kind.DATASTORE_REFUSING, cache,
                    f"{len(lines)} log line(s) carry Redis refusing commands ({reply}): {_REDIS_FIX.get(reply, '')}; "
                    f"e.g. {lines[-1][:140]}",
                    kinds.DatastoreRefusing(statefulset=cache, reply=reply, line=lines[-1][:300], impact=len(lines)))]


# A table read whole, again and again: big enough that reading it costs (a lookup table of a few hundred rows is
# cheaper to scan than to index), each scan reading most of it, and read that way often.
SCAN_MIN_ROWS = 10_000
SCAN_MIN_COUNT = 10  # times the table was read whole, all scans together
_FILTER = re.compile(r"\bWHERE\s+(?:\w+\.)?\"?([A-Za-z_][A-Za-z0-9_]{0,62})\"?\s*(?:=|<|>|IN\b|LIKE\b|ILIKE\b|BETWEEN\b)",
                     re.IGNORECASE)


def _missing_indexes(obs: Observations, symptoms: list[Finding]) -> list[Finding]:
    """Sequential scans that read a big table whole, many times, while requests are slow or failing: the query
    lacks its index. The heaviest statement reading the table (pg_stat_statements) names the column it filters
    on. The plan adds no step: an index is built CONCURRENTLY after review, an action item."""
    if not any(f.kind is Kind.SLOW_LATENCY for f in symptoms):
        return []  # a query without its index slows requests down; errors alone are not its sign
    out = []
    for row in obs.table_scans:
        table, scans = str(row.get("tablename") or ""), int(row.get("seq_scans") or 0)
        per_scan, live = float(row.get("rows_per_scan") or 0), int(row.get("live_tuples") or 0)
        # A parallel scan counts once per worker, each reading its part: a fifth of the table per scan is a whole
        # read shared by up to five processes. Read whole SCAN_MIN_COUNT times over, all told.
        if (not table or live < SCAN_MIN_ROWS or per_scan < 0.2 * live or scans * per_scan < SCAN_MIN_COUNT * live
                or int(row.get("index_scans") or 0) > scans):
            continue
        reads = re.compile(rf"\b(FROM|JOIN)\s+(?:\w+\.)?\"?{re.escape(table)}\"?(\s|$|;|\))", re.IGNORECASE)
        statement = next((q for q in obs.top_statements if reads.search(str(q.get("query") or ""))), None)
        text = " ".join(str(statement.get("query") or "").split()) if statement else ""
        match = _FILTER.search(text)
        column = match.group(1) if match else ""
        mean = float(statement["mean_ms"]) if statement and statement.get("mean_ms") is not None else None
        said = (f"; the heaviest statement on it: {text[:140]} ({mean:.0f} ms on average over "
                f"{int(statement.get('calls') or 0)} calls)" if statement and mean is not None else "")
        out.append(Finding(Kind.MISSING_INDEX, table,
                           f"sequential scans read all {live:,} rows about {scans * per_scan / live:.0f} times over "
                           f"({scans} scans){said}; an index"
                           f"{f' on {column}' if column else ''} is the fix: build it CONCURRENTLY after review (an "
                           "action item, not a step)",
                           kinds.MissingIndex(table=table, seq_scans=scans, rows_per_scan=per_scan, live_tuples=live,
                                              statement=text[:300], mean_ms=mean, column=column,
                                              impact=scans * per_scan)))
    return out


def _unrouted(obs: Observations, targets: Targets, symptoms: list[Finding]) -> list[Finding]:
    """A Service that selects a workload whose pods are ready, yet lists no ready address: the endpoints controller
    found no container port its targetPort names, so the Service routes nothing. No restart changes a Service;
    a person fixes its targetPort (or the containers' port name)."""
    if not symptoms:
        return []
    ready = {str(w.get("name")): int(w.get("ready") or 0) for w in obs.workloads}
    out = []
    for svc in obs.services:
        selector = dict(part.split("=", 1) for part in str(svc.get("selector") or "").split(",") if "=" in part)
        app = selector.get("app") or selector.get("app.kubernetes.io/name") or ""
        workload = workload_named(app, targets.deployments) if app else ""
        if not workload or int(svc.get("ready") or 0) or not ready.get(workload):
            continue
        out.append(Finding(Kind.SERVICE_NO_ENDPOINTS, f"service/{svc['name']}",
                           f"Service {svc['name']} selects {workload}, whose {ready[workload]} pod(s) are ready, but "
                           f"lists no ready endpoint: its targetPort {svc.get('target_port')!s} matches no port their "
                           f"containers declare; fix the Service's targetPort (kubectl get endpoints {svc['name']})",
                           kinds.ServiceNoEndpoints(service=str(svc["name"]), deployment=workload,
                                                    target_port=str(svc.get("target_port") or ""),
                                                    ready_pods=ready[workload], impact=ready[workload])))
    return out


OVERLOAD_FACTOR = 2.0  # traffic at least this many times its baseline


def _load(obs: Observations, targets: Targets, symptoms: list[Finding]) -> list[Finding]:
    suffering = {f.subject for f in symptoms if f.kind in (Kind.ERROR_SPIKE, Kind.SLOW_LATENCY)}
    out = []
    for row in obs.request_rate:
        service, now, baseline = row.get("service"), row.get("rps_now"), row.get("rps_baseline")
        if service not in suffering or not now or not baseline or now < OVERLOAD_FACTOR * baseline:
            continue
        deployment = workload_named(str(service), targets.deployments)
        replicas = next((int(w["desired"]) for w in obs.workloads if w.get("name") == deployment), 0)
        out.append(Finding(Kind.OVERLOAD, str(service), f"{now:.0f} requests/s, {now / baseline:.1f}x the baseline "
                                                        f"of {baseline:.0f}/s",
                           kinds.Overload(deployment=deployment, replicas=replicas, rps_now=float(now),
                                    rps_baseline=float(baseline), impact=now / baseline)))
    return out


def _symptoms(obs: Observations, targets: Targets) -> list[Finding]:
    out = []
    for row in obs.error_ratio_now:
        ratio = row.get("error_ratio")
        if ratio is not None and ratio >= targets.error_ratio_moderate:
            out.append(Finding(Kind.ERROR_SPIKE, row.get("service", "all"), f"{ratio:.1%} of requests fail",
                               kinds.Evidence(impact=ratio)))
    for row in obs.latency_p95_now:
        seconds = row.get("seconds")
        if seconds is not None and seconds > targets.latency_p95_slow_seconds:
            out.append(Finding(Kind.SLOW_LATENCY, row.get("service", "all"), f"p95 {seconds:.1f} s",
                               kinds.Evidence(impact=seconds)))
    for ep in obs.endpoints:
        if not ep.get("ok"):
            out.append(Finding(Kind.ENDPOINT_DOWN, ep["url"], ep.get("error") or f"HTTP {ep.get('status')}"))
    return out
