"""Action items a post-mortem suggests for each cause found (playbook: Action Items). Pure.

One row per kind of cause; a team adds its own in a TOML file named by ``action_items_file``
(``lock-root = ["Page the payments team's on-call"]``), appended to these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from irkit.rules.kinds import Finding, Kind

__all__ = ["ACTION_ITEMS", "suggest"]

ACTION_ITEMS: dict[Kind, tuple[str, ...]] = {
    Kind.LOCK_ROOT: ("Set idle_in_transaction_session_timeout (e.g. 60s) for the application's database role",
                     "Alert when sessions wait on locks for more than 30 s",
                     "Find the code path that leaves its transaction open"),
    Kind.DEADLOCK: ("Take row locks in one order in the code paths that deadlocked",
                    "Alert when pg_stat_database.deadlocks increases"),
    Kind.DDL_QUEUED: ("Run schema migrations with lock_timeout (e.g. 5s) and retry them",
                      "Schedule migrations away from long-running reads and peak traffic"),
    Kind.LONG_RUNNING_QUERY: ("Set statement_timeout for the application's database role",
                              "Move reporting queries to a replica",
                              "Alert on queries running longer than 5 minutes"),
    Kind.DB_SATURATION: ("Put a connection pooler (PgBouncer) in front of the database",
                         "Limit connections per application and set idle_session_timeout",
                         "Alert at 80 % of max_connections"),
    Kind.DATASTORE_DOWN: ("Alert on the datastore's disk, memory and availability before it fails",
                          "Review the datastore's failover (replica promotion) and rehearse it"),
    Kind.SCHEDULED_ACTOR: ("Find who owns the CronJob and why it pins this Deployment; remove or fix it, or make it "
                           "read the release it applies from the same place the deploy writes",
                           "Give every automated writer its own field manager name, so managedFields says who "
                           "changed what"),
    Kind.BAD_REVISION: ("Gate rollouts on health: a canary or progressive rollout that rolls back by itself",
                        "Make the readiness probe fail a rollout whose new pods crash",
                        "Add the failing case to the release's tests"),
    Kind.DATASTORE_REFUSING: ("Alert on Redis's rejected commands and on used memory against maxmemory",
                              "Roll a Redis password change to every client before Redis requires it",
                              "Choose the maxmemory policy on purpose (a cache evicts; a store must not fill)"),
    Kind.CREDENTIALS_REJECTED: ("Roll credentials with both passwords valid for an overlap window (dual users or "
                                "VALID UNTIL), then restart the readers, then retire the old one",
                                "Have the pods reload the Secret (a watcher or a restart annotation from the "
                                "rotation), not only read it at start",
                                "Alert on PostgreSQL authentication failures (SQLSTATE 28P01) per application"),
    Kind.OOM_KILLED: ("Review the container's memory limit against its real peak usage",
                      "Alert on container restarts and OOMKilled terminations"),
    Kind.IMAGE_PULL: ("Check in CI that the image exists in the registry before the deploy",
                      "Alert on ImagePullBackOff"),
    Kind.BROKEN_SPEC: ("Fix what the explaining line names in the manifest, and check it before it reaches the cluster "
                       "(a dry run of the image's command, the image's presence and pull secret, the Secrets and "
                       "settings it needs)",
                       "Pin images by digest so a pod started later runs what was reviewed"),
    Kind.MISSING_INDEX: ("Create the index the heaviest statement needs (CREATE INDEX CONCURRENTLY on the column the "
                         "finding names), reviewed and applied like a migration: irkit never builds it",
                         "Watch pg_stat_statements' slowest statements and sequential scans of big tables"),
    Kind.SERVICE_NO_ENDPOINTS: ("Check in CI that every Service's targetPort names a port its pods declare (a dry "
                                "run of the manifests with kubeconform or a policy)",
                                "Alert on Services with no ready endpoints (kube_endpoint_address_available == 0)"),
    Kind.VOLUME_FULL: ("Alert on the volume's free space (kubelet_volume_stats_available_bytes) well before it is full",
                       "Give the volume room to grow (a StorageClass with allowVolumeExpansion) and a retention for "
                       "what fills it"),
    Kind.QUOTA_EXCEEDED: ("Size the namespace's ResourceQuota for a rollout's surge and the peak's replicas",
                          "Alert on FailedCreate events and on quota usage near its limit"),
    Kind.CRASHLOOP: ("Alert on CrashLoopBackOff",
                     "Fix the crash the previous container's logs show"),
    Kind.PROVIDER_FAILING: ("Fail over to the backup provider automatically",
                            "Alert on the provider's error ratio"),
    Kind.UPSTREAM_TIMEOUT: ("Keep a circuit breaker in front of this upstream",
                            "Give each upstream call a timeout and a retry budget"),
    Kind.OVERLOAD: ("Add a HorizontalPodAutoscaler with headroom for the observed peak",
                    "Load-test to the observed peak"),
    Kind.UNSCHEDULABLE: ("Add cluster capacity or a cluster autoscaler",
                         "Review the pods' resource requests"),
    Kind.PODS_NOT_READY: ("Review the readiness probe and what it depends on",),
}


def suggest(findings: Sequence[Finding], extra: Mapping[str, Sequence[str]] | None = None) -> list[tuple[str, str]]:
    """(cause, item) for each cause found, built-in items first, then the team's; each item once."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for finding in findings:
        if not finding.is_cause:
            continue
        for item in (*ACTION_ITEMS.get(finding.kind, ()), *(extra or {}).get(finding.kind.value, ())):
            if item not in seen:
                seen.add(item)
                out.append((f"{finding.kind.value} {finding.subject}", item))
    return out
