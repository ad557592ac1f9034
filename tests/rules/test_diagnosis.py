"""The diagnosis rules over a decision table of observations: one row per rule and per boundary.

No services: each row is what phase 2 could record, and the findings the playbook's
reasoning expects from it, in rank order. A rule change shows here as the rows that moved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from irkit.rules.diagnosis import Observations, Targets, diagnose
from irkit.rules.kinds import KINDS, Kind

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
T = Targets()


def _pod(name: str, **fields: Any) -> dict[str, Any]:
    return {"pod": name, "phase": "Running", "all_ready": False, "restarts": 5, "waiting_reason": None,
            "last_termination_reason": None, "owner": f"ReplicaSet/{name.rsplit('-', 2)[0]}", **fields}


def _revisions(deployment: str, age: timedelta, previous: bool = True) -> list[dict[str, Any]]:
    rows = [{"deployment": deployment, "revision": 2, "current": True, "created": (NOW - age).isoformat(),
             "images": "api:2", "replicaset": f"{deployment}-new"}]
    if previous:
        rows.append({"deployment": deployment, "revision": 1, "current": False,
                     "created": (NOW - timedelta(days=9)).isoformat(), "images": "api:1"})
    return rows


RS = "ReplicaSet/backend-deployment-new"
# PostgreSQL's ERROR as the JDBC driver (Spring Boot's log format), node-postgres and psycopg relay it.
PG_TIMEOUT_LOG = """2026-12-07 13:02:11.412 ERROR 1 --- [nio-8080-exec-4] o.h.e.j.s.SqlExceptionHelper : ERROR: canceling statement due to lock timeout
2026-12-07 13:02:12.007 ERROR 1 --- [nio-8080-exec-7] o.h.e.j.s.SqlExceptionHelper : ERROR: canceling statement due to lock timeout
error: canceling statement due to statement timeout
psycopg.errors.QueryCanceled: canceling statement due to statement timeout
"""
# grpc-go's status error between two internal services: "rpc error" is gRPC's, not a JSON-RPC provider's.
GRPC_LOG = """2026-12-07T13:02:11Z ERROR inventory call failed: rpc error: code = Unavailable desc = connection refused
2026-12-07T13:02:12Z ERROR inventory call failed: rpc error: code = Unavailable desc = connection refused
2026-12-07T13:02:13Z ERROR inventory call failed: rpc error: code = DeadlineExceeded desc = context deadline exceeded
"""
# PostgreSQL's FATAL for a wrong password as asyncpg, psycopg and the JDBC driver relay it.
AUTH_LOG = """asyncpg.exceptions.InvalidPasswordError: password authentication failed for user "marketplace"
psycopg.OperationalError: connection failed: FATAL:  password authentication failed for user "marketplace"
org.postgresql.util.PSQLException: FATAL: password authentication failed for user "marketplace" (SQLSTATE 28P01)
"""
OTHER_AUTH_LOG = """ERROR 1045 (28000): Access denied for user 'app'@'10.1.0.7' (using password: YES)
ERROR 1045 (28000): Access denied for user 'app'@'10.1.0.8' (using password: YES)
redis: WRONGPASS invalid username-password pair or user is disabled.
"""
# Redis's -OOM reply as ioredis, redis-py and go-redis relay it.
REDIS_OOM_LOG = """ReplyError: OOM command not allowed when used memory > 'maxmemory'.
redis.exceptions.OutOfMemoryError: OOM command not allowed when used memory > 'maxmemory'.
set cart:8812: OOM command not allowed when used memory > 'maxmemory'.
"""
OTHER_OOM_LOG = """SERVER_ERROR out of memory storing object
ERROR:  out of memory
DETAIL:  Failed on request of size 8192 in memory context "ExecutorState".
"""
PROVIDER_LOG = "".join(f"2026-11-30T02:5{i}:00Z ERROR eth_call failed: blockchain provider https://rpc.example "
                       "answered 503\n" for i in range(5))
UPSTREAM_LOG = "".join(f"2026-11-30T02:5{i}:00Z WARN call to payments-api timed out after 10000ms\n" for i in range(4))

# Why a container cannot run, as runc, containerd and the kubelet report it, and as applications refuse to start.
RUNC_NOT_FOUND = ('failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create '
                  'failed: unable to start container process: exec: "wge": executable file not found in $PATH: unknown')
PULL_DENIED = ('Failed to pull image "ghcr.io/acme/storefront:2.4.1": rpc error: code = Unknown desc = failed to pull and '
               'unpack image "ghcr.io/acme/storefront:2.4.1": failed to resolve reference "ghcr.io/acme/storefront:2.4.1": '
               'pull access denied, repository does not exist or may require authorization: server message: '
               'insufficient_scope: authorization failed')
PULL_TRANSIENT = ('Failed to pull image "ghcr.io/acme/storefront:2.4.1": rpc error: code = Unknown desc = failed to pull '
                  'and unpack image: failed to copy: httpReadSeeker: failed open: unexpected status code '
                  'https://ghcr.io/v2/acme/storefront/blobs/sha256:9f: 503 Service Unavailable')
PY_ENVIRON_LOG = """Traceback (most recent call last):
  File "/app/worker.py", line 7, in <module>
    BROKER_URL = os.environ["BROKER_URL"]
                 ~~~~~~~~~~^^^^^^^^^^^^^^
  File "<frozen os>", line 679, in __getitem__
KeyError: 'BROKER_URL'
"""
PY_DICT_KEYERROR_LOG = """Traceback (most recent call last):
  File "/app/worker.py", line 31, in handle
    order = cache["ORDER_42"]
KeyError: 'ORDER_42'
"""
SPRING_PLACEHOLDER_LOG = ("org.springframework.util.PlaceholderResolutionException: Could not resolve placeholder "
                          "'PAYMENTS_DB_URL' in value \"${PAYMENTS_DB_URL}\"\n")

# A Deployment whose failing revision was written at WRITTEN, and CronJobs that may have written it.
WRITTEN = NOW - timedelta(minutes=8)


def _actor(writer: str, *jobs: dict[str, Any]) -> dict[str, Any]:
    return {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff", owner=RS)],
            "rollout_history": _revisions("backend-deployment", timedelta(minutes=8)),
            "workloads": [{"name": "backend-deployment", "desired": 3, "ready": 0, "template_writer": writer,
                           "template_written_at": WRITTEN}],
            "cronjobs": list(jobs)}


PIN = {"name": "pin-release", "schedule": "*/10 * * * *", "suspend": False, "last_schedule": WRITTEN - timedelta(seconds=20),
       "command": "kubectl set image deployment/backend-deployment backend=api:2"}

def _scans(table: str = "orders", scans: int = 400, per_scan: float = 199_000, live: int = 200_000,
           index_scans: int = 3, slow: bool = True) -> dict[str, Any]:
    return {"table_scans": [{"tablename": table, "seq_scans": scans, "rows_per_scan": per_scan, "live_tuples": live,
                             "index_scans": index_scans}],
            "top_statements": [{"query": "SELECT id, status FROM orders WHERE customer_email = $1", "calls": 400,
                                "mean_ms": 38.0, "total_ms": 15200.0, "rows": 400}],
            **({"latency_p95_now": [{"service": "backend", "seconds": 6.0}]} if slow else {})}


CRASHING = [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff", owner=RS),
            _pod("backend-deployment-abc-2", waiting_reason="CrashLoopBackOff", owner=RS)]

TABLE: list[tuple[str, dict[str, Any], list[tuple[Kind, str]]]] = [
    ("nothing observed", {}, []),
    ("a lock root", {"lock_roots": [{"pid": 7, "blocked_count": 3, "state": "idle in transaction", "query": "UPDATE"}]},
     [(Kind.LOCK_ROOT, "pid 7")]),
    ("two lock roots: more sessions behind first",
     {"lock_roots": [{"pid": 7, "blocked_count": 1}, {"pid": 9, "blocked_count": 4}]},
     [(Kind.LOCK_ROOT, "pid 9"), (Kind.LOCK_ROOT, "pid 7")]),
    ("a lock cycle", {"lock_cycles": [[3, 4]]}, [(Kind.DEADLOCK, "pids 3,4")]),
    ("a long active query", {"long_running": [{"pid": 5, "state": "active", "age_seconds": 90, "query": "SELECT"}]},
     [(Kind.LONG_RUNNING_QUERY, "pid 5")]),
    ("a query waiting on a lock is a waiter, not a cause",
     {"long_running": [{"pid": 5, "state": "active", "wait_event_type": "Lock", "age_seconds": 90}]}, []),
    ("an idle transaction is not a running query",
     {"long_running": [{"pid": 5, "state": "idle in transaction", "age_seconds": 900}]}, []),
    ("saturation exactly at the ratio", {"saturation": {"sessions": 90, "max_connections": 103, "reserved": 3}},
     [(Kind.DB_SATURATION, "postgres")]),
    ("saturation just under the ratio", {"saturation": {"sessions": 89, "max_connections": 103, "reserved": 3}}, []),
    ("a crashloop since a deploy 20 minutes ago is the revision",
     {"unhealthy_pods": CRASHING, "rollout_history": _revisions("backend-deployment", timedelta(minutes=20))},
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("a crashloop a day after its deploy is per pod",
     {"unhealthy_pods": CRASHING, "rollout_history": _revisions("backend-deployment", timedelta(hours=25))},
     [(Kind.CRASHLOOP, "backend-deployment-abc-1"), (Kind.CRASHLOOP, "backend-deployment-abc-2")]),
    ("a crashloop with no earlier revision is per pod",
     {"unhealthy_pods": CRASHING[:1],
      "rollout_history": _revisions("backend-deployment", timedelta(minutes=20), previous=False)},
     [(Kind.CRASHLOOP, "backend-deployment-abc-1")]),
    ("an OOMKilled pod", {"unhealthy_pods": [_pod("frontend-deployment-abc-1", all_ready=True,
                                                   last_termination_reason="OOMKilled", memory_limit="512Mi",
                                                   last_terminated_at=NOW - timedelta(minutes=1))]},
     [(Kind.OOM_KILLED, "frontend-deployment")]),
    ("an OOMKill two hours ago is history (negative control)",
     {"unhealthy_pods": [_pod("frontend-deployment-abc-1", all_ready=True, last_termination_reason="OOMKilled",
                              last_terminated_at=NOW - timedelta(hours=2))]}, []),
    ("a crash long ago, ready now, is history (negative control)",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", all_ready=True, last_termination_reason="Error",
                              last_terminated_at=NOW - timedelta(days=2))]}, []),
    ("a fresh deploy that is healthy is no finding (negative control)",
     {"rollout_history": _revisions("backend-deployment", timedelta(minutes=5))}, []),
    ("a new revision whose image cannot be pulled is the revision",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="ImagePullBackOff", owner=RS)],
      "rollout_history": _revisions("backend-deployment", timedelta(minutes=10))},
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("a new revision that never gets ready is the revision",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", owner=RS), _pod("backend-deployment-abc-2", owner=RS)],
      "rollout_history": _revisions("backend-deployment", timedelta(minutes=10))},
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("a new revision OOMKilled since its deploy is the revision, not a memory limit",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", all_ready=True, owner=RS, last_termination_reason="OOMKilled",
                              last_terminated_at=NOW - timedelta(minutes=1))],
      "rollout_history": _revisions("backend-deployment", timedelta(minutes=10))},
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("pods of the old revision failing are not the new revision's fault",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff",
                              owner="ReplicaSet/backend-deployment-old")],
      "rollout_history": _revisions("backend-deployment", timedelta(minutes=10))},
     [(Kind.CRASHLOOP, "backend-deployment-abc-1")]),
    ("a DDL queued behind a reader, queries behind it",
     {"lock_roots": [{"pid": 10, "blocked_count": 3}],
      "lock_edges": [{"blocked_pid": 11, "blocking_pid": 10, "blocked_query": "ALTER TABLE orders ADD COLUMN x int"},
                     {"blocked_pid": 12, "blocking_pid": 11, "blocked_query": "SELECT * FROM orders"},
                     {"blocked_pid": 13, "blocking_pid": 11, "blocked_query": "SELECT * FROM orders"}]},
     [(Kind.LOCK_ROOT, "pid 10"), (Kind.DDL_QUEUED, "pid 11")]),
    ("a DDL waiting with nobody behind it is a waiter",
     {"lock_roots": [{"pid": 10, "blocked_count": 1}],
      "lock_edges": [{"blocked_pid": 11, "blocking_pid": 10, "blocked_query": "ALTER TABLE orders ADD COLUMN x int"}]},
     [(Kind.LOCK_ROOT, "pid 10")]),
    ("pods unschedulable for lack of resources",
     {"warning_events": [{"reason": "FailedScheduling", "object": "Pod/frontend-deployment-abc-1",
                          "message": "0/3 nodes are available: 3 Insufficient cpu."}],
      "unhealthy_pods": [_pod("frontend-deployment-abc-1", phase="Pending")]},
     [(Kind.UNSCHEDULABLE, "frontend-deployment")]),
    ("the provider failing in the logs while requests fail",
     {"logs": [{"deployment": "backend-deployment", "text": PROVIDER_LOG}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.12}]},
     [(Kind.PROVIDER_FAILING, "backend-deployment"), (Kind.ERROR_SPIKE, "backend")]),
    ("the provider failing in the logs with every signal healthy is noise (negative control)",
     {"logs": [{"deployment": "backend-deployment", "text": PROVIDER_LOG}]}, []),
    ("upstream calls timing out while requests slow down",
     {"logs": [{"deployment": "backend-deployment", "text": UPSTREAM_LOG}],
      "latency_p95_now": [{"service": "backend", "seconds": 6.0}]},
     [(Kind.UPSTREAM_TIMEOUT, "backend-deployment"), (Kind.SLOW_LATENCY, "backend")]),
    ("PostgreSQL cancelling statements at its lock timeout is not an upstream timing out (negative row)",
     {"logs": [{"deployment": "backend-deployment", "text": PG_TIMEOUT_LOG}],
      "latency_p95_now": [{"service": "backend", "seconds": 6.0}]},
     [(Kind.SLOW_LATENCY, "backend")]),
    ("gRPC's status line between two services is not the blockchain provider (negative row)",
     {"logs": [{"deployment": "backend-deployment", "text": GRPC_LOG}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.12}]},
     [(Kind.ERROR_SPIKE, "backend")]),
    ("PostgreSQL refusing the app's password after a Secret rotation, while requests fail",
     {"logs": [{"deployment": "backend-deployment", "text": AUTH_LOG}],
      "config_changes": [{"kind": "Secret", "name": "backend-secrets", "changed_at": NOW - timedelta(minutes=9),
                          "manager": "vault-secrets-operator"}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.3}]},
     [(Kind.CREDENTIALS_REJECTED, "backend-deployment"), (Kind.ERROR_SPIKE, "backend")]),
    ("the refusal with every signal healthy is noise (negative row)",
     {"logs": [{"deployment": "backend-deployment", "text": AUTH_LOG}]}, []),
    ("MySQL's and Redis's refusals are other software's words (negative row)",
     {"logs": [{"deployment": "backend-deployment", "text": OTHER_AUTH_LOG}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.3}]},
     [(Kind.ERROR_SPIKE, "backend")]),
    ("Redis refusing writes at maxmemory while requests fail",
     {"logs": [{"deployment": "backend-deployment", "text": REDIS_OOM_LOG}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.2}]},
     [(Kind.DATASTORE_REFUSING, "redis-master"), (Kind.ERROR_SPIKE, "backend")]),
    ("Redis's refusals with every signal healthy are noise (negative row)",
     {"logs": [{"deployment": "backend-deployment", "text": REDIS_OOM_LOG}]}, []),
    ("memcached's and PostgreSQL's out-of-memory words are not Redis's (negative row)",
     {"logs": [{"deployment": "backend-deployment", "text": OTHER_OOM_LOG}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.2}]},
     [(Kind.ERROR_SPIKE, "backend")]),
    ("traffic three times its baseline while requests slow down",
     {"request_rate": [{"service": "backend", "rps_now": 120.0, "rps_baseline": 40.0}],
      "latency_p95_now": [{"service": "backend", "seconds": 6.0}],
      "workloads": [{"name": "backend-deployment", "desired": 3}]},
     [(Kind.OVERLOAD, "backend"), (Kind.SLOW_LATENCY, "backend")]),
    ("traffic high but every signal healthy is no finding (negative control)",
     {"request_rate": [{"service": "backend", "rps_now": 120.0, "rps_baseline": 40.0}]}, []),
    ("saturation by one application's idle connections names it",
     {"saturation": {"sessions": 95, "max_connections": 103, "reserved": 3},
      "connections": [{"application_name": "reporting-worker", "state": "idle", "sessions": 80},
                      {"application_name": "backend", "state": "active", "sessions": 15}]},
     [(Kind.DB_SATURATION, "postgres")]),
    ("a command the runtime cannot find: broken spec, no restart",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff",
                              last_termination_reason="StartError", last_termination_message=RUNC_NOT_FOUND)],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.07}]},
     [(Kind.BROKEN_SPEC, "backend-deployment"), (Kind.ERROR_SPIKE, "backend")]),
    ("an image the registry refuses: broken spec (the event says why)",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="ImagePullBackOff",
                              waiting_message='Back-off pulling image "ghcr.io/acme/storefront:2.4.1"')],
      "warning_events": [{"reason": "Failed", "object": "Pod/backend-deployment-abc-1", "message": PULL_DENIED}]},
     [(Kind.BROKEN_SPEC, "backend-deployment")]),
    ("a registry's 503 passes: an image pull, restart it (negative row)",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="ErrImagePull", waiting_message=PULL_TRANSIENT)]},
     [(Kind.IMAGE_PULL, "backend-deployment-abc-1")]),
    ("a Secret the pod references is missing: broken spec",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", phase="Pending", waiting_reason="CreateContainerConfigError",
                              waiting_message='secret "payments-db" not found')]},
     [(Kind.BROKEN_SPEC, "backend-deployment")]),
    ("os.environ lacking a variable: broken spec",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff")],
      "logs": [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"], "text": PY_ENVIRON_LOG}]},
     [(Kind.BROKEN_SPEC, "backend-deployment")]),
    ("Spring's unresolved placeholder: broken spec",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff")],
      "logs": [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"],
                "text": SPRING_PLACEHOLDER_LOG}]},
     [(Kind.BROKEN_SPEC, "backend-deployment")]),
    ("a KeyError of a dict is the application's bug, not a setting it lacks (negative row)",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff")],
      "logs": [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"],
                "text": PY_DICT_KEYERROR_LOG}]},
     [(Kind.CRASHLOOP, "backend-deployment-abc-1")]),
    ("a broken spec in a revision deployed an hour ago: the revision, rolled back",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff", owner=RS,
                              last_termination_reason="StartError", last_termination_message=RUNC_NOT_FOUND)],
      "rollout_history": _revisions("backend-deployment", timedelta(hours=1))},
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("a CronJob the API server names as the template's writer: the scheduled actor before the revision",
     _actor("pin-release", {**PIN, "command": "deploy.sh", "last_schedule": NOW - timedelta(hours=3)}),
     [(Kind.SCHEDULED_ACTOR, "cronjob/pin-release"), (Kind.BAD_REVISION, "backend-deployment")]),
    ("a CronJob whose command names the Deployment and ran just before the write (kubectl-set wrote it)",
     _actor("kubectl-set", PIN),
     [(Kind.SCHEDULED_ACTOR, "cronjob/pin-release"), (Kind.BAD_REVISION, "backend-deployment")]),
    ("a suspended CronJob writes nothing (negative row)", _actor("kubectl-set", {**PIN, "suspend": True}),
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("a CronJob that ran an hour before the write did not make it (negative row)",
     _actor("kubectl-set", {**PIN, "last_schedule": WRITTEN - timedelta(hours=1)}),
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("a CronJob naming another Deployment (backend-deployment-canary) is not this one's writer (negative row)",
     _actor("kubectl-set", {**PIN, "command": "kubectl set image deployment/backend-deployment-canary api=x"}),
     [(Kind.BAD_REVISION, "backend-deployment")]),
    ("saturation by an application's sessions idle in a transaction names it too",
     {"saturation": {"sessions": 95, "max_connections": 103, "reserved": 3},
      "connections": [{"application_name": "etl-sync", "state": "idle in transaction", "sessions": 70,
                       "oldest_state_seconds": 300},
                      {"application_name": "backend", "state": "active", "sessions": 25}]},
     [(Kind.DB_SATURATION, "postgres")]),
    ("a big table read whole again and again while requests slow down: a missing index", _scans(),
     [(Kind.MISSING_INDEX, "orders"), (Kind.SLOW_LATENCY, "backend")]),
    ("the same scans with every signal healthy are no finding (negative row)", _scans(slow=False), []),
    ("a small lookup table is cheaper to scan than to index (negative row)",
     _scans(table="currencies", live=180, per_scan=180), [(Kind.SLOW_LATENCY, "backend")]),
    ("a big table scanned a few times (a nightly report) is no missing index (negative row)",
     _scans(scans=3), [(Kind.SLOW_LATENCY, "backend")]),
    ("scans that read a sliver of the table use a partial path, not a missing index (negative row)",
     _scans(per_scan=40), [(Kind.SLOW_LATENCY, "backend")]),
    ("pods pending on nodes the kubelet tainted for disk pressure: the scheduler's words",
     {"warning_events": [{"reason": "FailedScheduling", "object": "Pod/backend-deployment-abc-9",
                          "message": "0/3 nodes are available: 3 node(s) had untolerated taint "
                                     "{node.kubernetes.io/disk-pressure: }. preemption: 0/3 nodes are available: 3 "
                                     "Preemption is not helpful for scheduling."}],
      "unhealthy_pods": [_pod("backend-deployment-abc-9", phase="Pending")]},
     [(Kind.UNSCHEDULABLE, "backend-deployment")]),
    ("pods pending on a node selector no node matches",
     {"warning_events": [{"reason": "FailedScheduling", "object": "Pod/backend-deployment-abc-9",
                          "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."}],
      "unhealthy_pods": [_pod("backend-deployment-abc-9", phase="Pending")]},
     [(Kind.UNSCHEDULABLE, "backend-deployment")]),
    ("a control plane's taint in the scheduler's words is no reason: every cluster has one (negative row)",
     {"warning_events": [{"reason": "FailedScheduling", "object": "Pod/backend-deployment-abc-9",
                          "message": "0/3 nodes are available: 1 node(s) had untolerated taint "
                                     "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't have free ports."}],
      "unhealthy_pods": [_pod("backend-deployment-abc-9", phase="Pending")]},
     []),
    ("a FailedScheduling of a pod that has been scheduled since is history (negative row)",
     {"warning_events": [{"reason": "FailedScheduling", "object": "Pod/backend-deployment-abc-9",
                          "message": "0/3 nodes are available: 3 Insufficient cpu."}]}, []),
    ("a FailedScheduling about a volume still binding is not unschedulable (negative row)",
     {"warning_events": [{"reason": "FailedScheduling", "object": "Pod/backend-deployment-abc-9",
                          "message": "running PreBind plugin \"VolumeBinding\": binding volumes: timed out waiting "
                                     "for the condition"}]}, []),
    ("a ResourceQuota refusing a ReplicaSet's new pods",
     {"warning_events": [{"reason": "FailedCreate", "object": "ReplicaSet/backend-deployment-7d9f",
                          "message": 'Error creating: pods "backend-deployment-7d9f-x2k" is forbidden: exceeded quota: '
                                     "compute, requested: limits.memory=2Gi, used: limits.memory=8Gi, limited: "
                                     "limits.memory=8Gi"}]},
     [(Kind.QUOTA_EXCEEDED, "backend-deployment")]),
    ("a quota's refusal from before the workload got its pods is history (negative row)",
     {"warning_events": [{"reason": "FailedCreate", "object": "ReplicaSet/backend-deployment-7d9f",
                          "message": 'Error creating: pods "backend-deployment-7d9f-x2k" is forbidden: exceeded quota: '
                                     "compute, requested: limits.memory=2Gi, used: limits.memory=8Gi, limited: "
                                     "limits.memory=8Gi"}],
      "workloads": [{"name": "backend-deployment", "desired": 3, "ready": 3}]}, []),
    ("a FailedCreate for another reason is not a quota (negative row)",
     {"warning_events": [{"reason": "FailedCreate", "object": "ReplicaSet/backend-deployment-7d9f",
                          "message": 'Error creating: pods "x" is forbidden: error looking up service account '
                                     "shop/api: serviceaccount \"api\" not found"}]}, []),
    ("the database's disk full: its own line, no restart",
     {"unhealthy_pods": [_pod("postgres-primary-0", waiting_reason="CrashLoopBackOff", owner="StatefulSet/postgres-primary")],
      "database_logs": [{"pods": ["postgres-primary-0"],
                         "text": '2026-12-07 03:01:02.113 UTC [1] PANIC:  could not write to file "pg_wal/xlogtemp.29": '
                                 "No space left on device\n"}]},
     [(Kind.VOLUME_FULL, "postgres-primary")]),
    ("PostgreSQL refusing to run as root: a broken spec, no restart",
     {"unhealthy_pods": [_pod("postgres-primary-0", waiting_reason="CrashLoopBackOff", owner="StatefulSet/postgres-primary")],
      "database_logs": [{"pods": ["postgres-primary-0"],
                         "text": '"root" execution of the PostgreSQL server is not permitted.\nThe server must be '
                                 "started under an unprivileged user ID to prevent\n"}]},
     [(Kind.BROKEN_SPEC, "postgres-primary")]),
    ("an application that could not resolve a host is not a placeholder it lacks (negative row)",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff")],
      "logs": [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"],
                "text": "ERROR could not resolve host 'payments.internal': Name or service not known\n"}]},
     [(Kind.CRASHLOOP, "backend-deployment-abc-1")]),
    ("a client's query that carries the words is not a full disk (negative row)",
     {"unhealthy_pods": [_pod("postgres-primary-0", waiting_reason="CrashLoopBackOff", owner="StatefulSet/postgres-primary")],
      "database_logs": [{"pods": ["postgres-primary-0"],
                         "text": 'ERROR:  invalid input syntax for type integer: "No space left on device"\n'
                                 "STATEMENT:  SELECT 'No space left on device'::int\n"}]},
     [(Kind.DATASTORE_DOWN, "postgres-primary")]),
    ("os.environ's KeyError from an os.py that is not frozen (Python before 3.11): broken spec",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff")],
      "logs": [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"],
                "text": 'Traceback (most recent call last):\n  File "/app/main.py", line 2, in <module>\n'
                        '  File "/usr/lib/python3.10/os.py", line 680, in __getitem__\n'
                        "    raise KeyError(key) from None\nKeyError: 'BROKER_URL'\n"}]},
     [(Kind.BROKEN_SPEC, "backend-deployment")]),
    ("the database down for another reason: restart its pod",
     {"unhealthy_pods": [_pod("postgres-primary-0", waiting_reason="CrashLoopBackOff", owner="StatefulSet/postgres-primary")],
      "database_logs": [{"pods": ["postgres-primary-0"], "text": "LOG:  database system is shut down\n"}]},
     [(Kind.DATASTORE_DOWN, "postgres-primary")]),
    ("a Service selecting ready pods but listing none: its targetPort matches nothing",
     {"services": [{"name": "backend", "selector": "app=backend-deployment", "port": 80, "target_port": "http",
                    "ready": 0, "not_ready": 0}],
      "workloads": [{"name": "backend-deployment", "desired": 3, "ready": 3}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 1.0}]},
     [(Kind.SERVICE_NO_ENDPOINTS, "service/backend"), (Kind.ERROR_SPIKE, "backend")]),
    ("a Service with no endpoint because no pod is ready is the pods' problem, not the Service's (negative row)",
     {"services": [{"name": "backend", "selector": "app=backend-deployment", "port": 80, "target_port": "http",
                    "ready": 0, "not_ready": 3}],
      "workloads": [{"name": "backend-deployment", "desired": 3, "ready": 0}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 1.0}]},
     [(Kind.ERROR_SPIKE, "backend")]),
    ("a Service routing to its ready pods is no finding (negative row)",
     {"services": [{"name": "backend", "selector": "app=backend-deployment", "port": 80, "target_port": "8080",
                    "ready": 3, "not_ready": 0}],
      "workloads": [{"name": "backend-deployment", "desired": 3, "ready": 3}],
      "error_ratio_now": [{"service": "backend", "error_ratio": 0.2}]},
     [(Kind.ERROR_SPIKE, "backend")]),
    ("an image that cannot be pulled", {"unhealthy_pods": [_pod("backend-deployment-abc-1",
                                                                 waiting_reason="ImagePullBackOff")]},
     [(Kind.IMAGE_PULL, "backend-deployment-abc-1")]),
    ("ErrImagePull too", {"unhealthy_pods": [_pod("backend-deployment-abc-1", waiting_reason="ErrImagePull")]},
     [(Kind.IMAGE_PULL, "backend-deployment-abc-1")]),
    ("a pod not ready", {"unhealthy_pods": [_pod("backend-deployment-abc-1", phase="Pending")]},
     [(Kind.PODS_NOT_READY, "backend-deployment-abc-1")]),
    ("a pod a rollout is creating is starting, not failing (negative row)",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", phase="Pending", waiting_reason="ContainerCreating",
                              restarts=0, age_seconds=40)]}, []),
    ("a pod still creating after five minutes is not ready",
     {"unhealthy_pods": [_pod("backend-deployment-abc-1", phase="Pending", waiting_reason="ContainerCreating",
                              restarts=0, age_seconds=400)]},
     [(Kind.PODS_NOT_READY, "backend-deployment-abc-1")]),
    ("error ratio exactly at the SEV-3 threshold", {"error_ratio_now": [{"service": "api", "error_ratio": 0.05}]},
     [(Kind.ERROR_SPIKE, "api")]),
    ("error ratio just under it", {"error_ratio_now": [{"service": "api", "error_ratio": 0.0499}]}, []),
    ("error ratio not measured", {"error_ratio_now": [{"service": "api", "error_ratio": None}]}, []),
    ("p95 exactly 5 s is not slow", {"latency_p95_now": [{"service": "api", "seconds": 5.0}]}, []),
    ("p95 above 5 s", {"latency_p95_now": [{"service": "api", "seconds": 5.01}]}, [(Kind.SLOW_LATENCY, "api")]),
    ("an endpoint down", {"endpoints": [{"url": "https://x/health", "ok": False, "status": 503}]},
     [(Kind.ENDPOINT_DOWN, "https://x/health")]),
    ("an endpoint up", {"endpoints": [{"url": "https://x/health", "ok": True, "status": 200}]}, []),
    ("a source that could not be asked", {"problems": [{"step": "lock graph", "error": "PostgreSQL at x: hung"}]},
     [(Kind.SOURCE_UNAVAILABLE, "lock graph")]),
    ("causes rank before symptoms",
     {"error_ratio_now": [{"service": "api", "error_ratio": 0.2}], "problems": [{"step": "events", "error": "403"}],
      "lock_roots": [{"pid": 7, "blocked_count": 2}], "endpoints": [{"url": "u", "ok": False}]},
     [(Kind.LOCK_ROOT, "pid 7"), (Kind.ENDPOINT_DOWN, "u"), (Kind.ERROR_SPIKE, "api"),
      (Kind.SOURCE_UNAVAILABLE, "events")]),
]


@pytest.mark.parametrize(("case", "observed", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_decision_table(case: str, observed: dict[str, Any], expected: list[tuple[Kind, str]]):
    found = diagnose(Observations(now=NOW, **observed), T)
    assert [(f.kind, f.subject) for f in found] == expected


def test_thresholds_come_from_the_targets():
    strict = Targets(error_ratio_moderate=0.01, latency_p95_slow_seconds=1.0, saturation_ratio=0.5)
    found = diagnose(Observations(now=NOW, error_ratio_now=[{"service": "a", "error_ratio": 0.02}],
                                  latency_p95_now=[{"service": "a", "seconds": 1.5}],
                                  saturation={"sessions": 5, "max_connections": 10}), strict)
    assert {f.kind for f in found} == {Kind.ERROR_SPIKE, Kind.SLOW_LATENCY, Kind.DB_SATURATION}


def test_an_oom_finding_carries_the_container_and_its_limit():
    pod = _pod("frontend-deployment-abc-1", last_termination_reason="OOMKilled", memory_limit="512Mi",
               last_terminated_at=NOW - timedelta(seconds=30))
    finding = diagnose(Observations(now=NOW, unhealthy_pods=[pod]), T)[0]
    assert finding.evidence.container == "frontend" and finding.evidence.memory_limit == "512Mi"


def test_every_kind_has_its_row_in_the_table_and_causes_rank_first():
    assert set(KINDS) == set(Kind)
    causes = [k for k in Kind if KINDS[k].cause]
    assert max(KINDS[k].order for k in causes) < min(KINDS[k].order for k in Kind if not KINDS[k].cause)


def test_the_saturating_application_and_its_deployment_are_named():
    obs = Observations(now=NOW, saturation={"sessions": 95, "max_connections": 100},
                       connections=[{"application_name": "backend", "state": "idle", "sessions": 90}])
    finding = diagnose(obs, T)[0]
    assert finding.evidence.application == "backend" and finding.evidence.deployment == "backend-deployment"
    assert "90 of them are idle connections of application 'backend'" in finding.detail


def test_a_failing_database_or_cache_pod_is_the_datastore_down_before_anything_it_breaks():
    obs = Observations(now=NOW, unhealthy_pods=[_pod("postgres-primary-0", waiting_reason="CrashLoopBackOff",
                                                     owner="StatefulSet/postgres-primary")],
                       endpoints=[{"url": "u", "ok": False, "status": 503}],
                       lock_roots=[{"pid": 7, "blocked_count": 1}])
    found = diagnose(obs, T)
    assert [(f.kind, f.subject) for f in found][:2] == [(Kind.DATASTORE_DOWN, "postgres-primary"),
                                                        (Kind.LOCK_ROOT, "pid 7")]
    assert found[0].evidence.pod == "postgres-primary-0"


def test_a_deadlock_postgresql_broke_is_a_finding_with_both_queries_and_nothing_to_terminate():
    from irkit.rules.plan import plan
    log = ("ERROR:  deadlock detected\nDETAIL:  Process 4711 waits for ShareLock on transaction 1021; blocked by "
           "process 4712.\n\tProcess 4712 waits for ShareLock on transaction 1020; blocked by process 4711.\n"
           "\tProcess 4711: UPDATE orders SET status = 'paid' WHERE id = 10\n"
           "\tProcess 4712: UPDATE orders SET status = 'refunded' WHERE id = 11\n")
    found = diagnose(Observations(now=NOW, database_logs=[{"text": log}], deadlocks=3), T)
    assert [(f.kind, f.subject) for f in found] == [(Kind.DEADLOCK, "broken by PostgreSQL")]
    assert found[0].evidence.queries == ("UPDATE orders SET status = 'paid' WHERE id = 10",
                                         "UPDATE orders SET status = 'refunded' WHERE id = 11")
    assert "pg_stat_database.deadlocks = 3" in found[0].detail
    assert plan(found) == []
    assert diagnose(Observations(now=NOW, database_logs=[{"text": "LOG: checkpoint complete"}]), T) == []


def test_a_crashloop_without_a_deploy_says_what_it_logged_before_dying():
    pod = _pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff")
    logs = [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"], "text": "INFO serving\n"},
            {"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"],
             "text": "INFO starting\nFATAL cannot connect to redis-master:6379: connection refused\n"}]
    finding = diagnose(Observations(now=NOW, unhealthy_pods=[pod], logs=logs), T)[0]
    assert finding.kind is Kind.CRASHLOOP and "its log: FATAL cannot connect to redis-master" in finding.detail


def test_unschedulable_pods_are_counted_once_and_the_schedulers_words_name_the_resource():
    gpu = ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No "
           "preemption victims found for incoming pod.")
    events = [{"reason": "FailedScheduling", "object": f"Pod/trainer-abc-{i % 2}", "message": gpu} for i in range(6)]
    pending = [_pod(f"trainer-abc-{i}", phase="Pending", owner="") for i in range(2)]
    [finding] = diagnose(Observations(warning_events=events, unhealthy_pods=pending, now=NOW),
                         Targets(deployments=("trainer",)))
    assert finding.kind is Kind.UNSCHEDULABLE and finding.subject == "trainer"
    assert finding.detail.startswith("2 pod(s) cannot be scheduled")  # two pods, six events
    assert "3 Insufficient nvidia.com/gpu" in finding.detail and "cpu or memory" not in finding.detail


def test_a_rejected_password_plans_a_restart_only_when_a_secret_was_rotated():
    from irkit.rules.plan import plan
    observed = {"logs": [{"deployment": "backend-deployment", "text": AUTH_LOG}],
                "error_ratio_now": [{"service": "backend", "error_ratio": 0.3}]}
    rotated = diagnose(Observations(now=NOW, config_changes=[
        {"kind": "Secret", "name": "backend-secrets", "changed_at": (NOW - timedelta(minutes=9)).isoformat(),
         "manager": "vault-secrets-operator"}], **observed), T)
    assert "Secret backend-secrets was written 9 min ago by vault-secrets-operator" in rotated[0].detail
    assert [(m.action, m.target) for m in plan(rotated)] == [("rollout-restart", "deployment/backend-deployment")]
    old = diagnose(Observations(now=NOW, config_changes=[
        {"kind": "Secret", "name": "backend-secrets", "changed_at": NOW - timedelta(days=40), "manager": "x"},
        {"kind": "ConfigMap", "name": "backend-config", "changed_at": NOW - timedelta(minutes=5), "manager": "x"}],
        **observed), T)
    assert old[0].kind is Kind.CREDENTIALS_REJECTED and "the password itself is wrong" in old[0].detail
    assert plan(old) == []  # a restart would fail the same way: no step pretends otherwise


def test_a_cache_that_refuses_plans_no_restart():
    from irkit.rules.plan import plan
    found = diagnose(Observations(now=NOW, logs=[{"deployment": "backend-deployment", "text": REDIS_OOM_LOG}],
                                  error_ratio_now=[{"service": "backend", "error_ratio": 0.2}]), T)
    assert "(OOM): Redis is at maxmemory with a policy that refuses writes" in found[0].detail
    assert plan(found) == []  # restarting the cache drops its data and changes neither the memory nor the policy


@pytest.mark.parametrize(("pod", "events", "logs", "line", "fix"), [
    (_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff", last_termination_reason="StartError",
          last_termination_message=RUNC_NOT_FOUND), [], [],
     'exec: "wge": executable file not found in $PATH', "the container's command or entrypoint"),
    (_pod("backend-deployment-abc-1", waiting_reason="ImagePullBackOff"),
     [{"reason": "Failed", "object": "Pod/backend-deployment-abc-1", "message": PULL_DENIED}], [],
     "pull access denied", "the image reference or its pull secret"),
    (_pod("backend-deployment-abc-1", waiting_reason="CrashLoopBackOff"), [],
     [{"deployment": "backend-deployment", "pods": ["backend-deployment-abc-1"], "text": PY_ENVIRON_LOG}],
     "KeyError: 'BROKER_URL'", "the setting it names"),
])
def test_a_pod_that_will_fail_again_names_its_line_and_plans_no_restart(
        pod: dict[str, Any], events: list[dict[str, Any]], logs: list[dict[str, Any]], line: str, fix: str):
    from irkit.rules.plan import plan
    found = diagnose(Observations(now=NOW, unhealthy_pods=[pod], warning_events=events, logs=logs,
                                  error_ratio_now=[{"service": "backend", "error_ratio": 0.07}]), T)
    assert found[0].kind is Kind.BROKEN_SPEC
    assert line in found[0].detail and f"fix {fix}" in found[0].detail
    assert plan(found) == []  # a new pod fails the same way: deleting this one only pretends


def test_a_scheduled_actor_is_suspended_before_the_rollback():
    from irkit.rules.plan import plan
    steps = plan(diagnose(Observations(now=NOW, **_actor("pin-release", PIN)), T))
    assert [(s.action, s.target) for s in steps] == [("suspend-cronjob", "cronjob/pin-release"),
                                                       ("rollout-undo", "deployment/backend-deployment")]
    assert steps[0].command == ("kubectl patch cronjob/pin-release -n web3-marketplace-prod --type=merge -p "
                                "'{\"spec\":{\"suspend\":true}}'")


def test_sessions_idle_in_a_transaction_are_named_and_the_plan_terminates_that_state_too():
    from irkit.rules.plan import plan
    found = diagnose(Observations(now=NOW, saturation={"sessions": 95, "max_connections": 103, "reserved": 3},
                                  connections=[{"application_name": "etl-sync", "state": "idle in transaction",
                                                "sessions": 60, "oldest_state_seconds": 600},
                                               {"application_name": "etl-sync", "state": "idle", "sessions": 10}]), T)
    assert "70 of them are idle connections of application 'etl-sync' (60 idle in a transaction" in found[0].detail
    [step] = plan(found)
    assert step.params["states"] == ["idle", "idle in transaction", "idle in transaction (aborted)"]
    import shlex
    sql = shlex.split(step.command)[-1]  # as psql receives it from the shell
    assert ("WHERE (state = 'idle' OR (state LIKE 'idle in transaction%' AND state_change < now() - interval "
            "'60 seconds')) AND datname = current_database() AND application_name = 'etl-sync';") in sql
    # A busy application is idle in a transaction for a moment between statements: that is no exhaustion by it.
    brief = diagnose(Observations(now=NOW, saturation={"sessions": 95, "max_connections": 103, "reserved": 3},
                                  connections=[{"application_name": "api", "state": "idle in transaction",
                                                "sessions": 80, "oldest_state_seconds": 0.2}]), T)
    assert "api" not in brief[0].detail


def test_a_missing_index_names_the_statement_and_its_column_and_plans_no_step():
    from irkit.rules.plan import plan
    found = diagnose(Observations(now=NOW, **_scans()), T)
    assert found[0].kind is Kind.MISSING_INDEX
    assert "SELECT id, status FROM orders WHERE customer_email = $1 (38 ms on average over 400 calls)" in found[0].detail
    assert "an index on customer_email is the fix" in found[0].detail
    assert plan(found) == []  # an index is built after review, never by irkit


def test_a_full_disk_or_a_quota_plans_no_restart():
    from irkit.rules.plan import plan
    full = diagnose(Observations(now=NOW, unhealthy_pods=[_pod("postgres-primary-0", waiting_reason="CrashLoopBackOff",
                                                              owner="StatefulSet/postgres-primary")],
                                 database_logs=[{"pods": ["postgres-primary-0"],
                                                 "text": "FATAL:  could not write lock file \"postmaster.pid\": No "
                                                         "space left on device\n"}]), T)
    assert "a restart frees nothing" in full[0].detail and plan(full) == []
