"""Session fixtures: real PostgreSQL, real Prometheus, and the Kubernetes API emulator over HTTP.

Each starts once per session on 127.0.0.1 and free ports and always stops. The
seeded situation is the one the tests (and later the notebooks) must find: an
error spike on the backend starting 30 minutes ago, a crashlooping backend
revision deployed 20 minutes ago, and a marketplace database.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from irkit import config as irconfig
from irkit.lab.kube import KubeLab, build_cluster
from irkit.lab.postgres import PostgresLab
from irkit.lab.prometheus import PrometheusLab, Segment, ServiceHistory

NAMESPACE = "web3-marketplace-prod"
SPIKE_START = -1800.0  # the backend's error spike began 30 minutes ago

HISTORIES = (
    ServiceHistory("backend", (Segment(-4 * 3600, SPIKE_START, 40, 0.01, 0.25),
                               Segment(SPIKE_START, 3 * 3600, 40, 0.12, 0.6))),
    ServiceHistory("frontend", (Segment(-4 * 3600, 3 * 3600, 25, 0.002, 0.12),)),
    ServiceHistory("search", (Segment(-4 * 3600, 3 * 3600, 5, 0.0, 7.0),)),
)

CLUSTER = {
    "workloads": [
        {"name": "backend-deployment", "container": "backend", "replicas": 3,
         "revisions": [{"image": "marketplace/backend:1.41.0", "age": "3d"},
                       {"image": "marketplace/backend:1.42.0", "age": "20m", "change_cause": "release 1.42.0"}],
         "pods": [{"count": 3, "state": "crashloop", "restarts": 7,
                   "logs": "2026-11-28T03:00:00Z INFO backend starting\n",
                   "previous_logs": "INFO backend starting\npanic: assignment to entry in nil map\n"
                                    "goroutine 1 [running]:\nmain.loadConfig()\n"}]},
        {"name": "frontend-deployment", "container": "frontend", "replicas": 2,
         "pods": [{"count": 1, "state": "running"}, {"count": 1, "state": "oomkilled", "restarts": 2}]},
        {"name": "postgres-primary", "kind": "StatefulSet", "container": "postgres", "replicas": 1},
        {"name": "redis-master", "kind": "StatefulSet", "container": "redis", "replicas": 1},
    ],
    "cronjobs": [{"name": "pin-release", "schedule": "0 3 * * *",
                  "command": ["kubectl", "set", "image", "deployment/backend-deployment",
                              "backend=marketplace/backend:1.42.0"]}],
}


@pytest.fixture(scope="session")
def pg_lab() -> Iterator[PostgresLab]:
    # A long deadlock_timeout lets a test catch a lock cycle before PostgreSQL breaks it.
    with PostgresLab(settings=("deadlock_timeout=60s", "max_connections=50")) as lab:
        yield lab


@pytest.fixture(scope="session")
def prom_lab() -> Iterator[PrometheusLab]:
    with PrometheusLab(HISTORIES) as lab:
        yield lab


@pytest.fixture(scope="session")
def kube_lab() -> Iterator[KubeLab]:
    with KubeLab() as lab:
        lab.load(build_cluster(CLUSTER, NAMESPACE))
        yield lab


@pytest.fixture(scope="session")
def kubeconfig(kube_lab: KubeLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kube_lab.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", NAMESPACE)


@pytest.fixture(scope="session")
def cfg(pg_lab: PostgresLab, prom_lab: PrometheusLab, kubeconfig: Path) -> irconfig.Config:
    """The config pointing at the three test services, built as a user would, from arguments."""
    return irconfig.load(env={}, pg_dsn=pg_lab.dsn, prom_url=prom_lab.url, kubeconfig=str(kubeconfig))


@pytest.fixture()
def black_hole() -> Iterator[str]:
    """host:port of a socket that accepts connections and never answers: a hung server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    sock.close()


@pytest.fixture()
def closed_port() -> str:
    """host:port where nothing listens: a service that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


# `make check` runs the tests not marked slow: the quick loop, under a minute with lint and types. A test is slow
# when it needs a real server the session starts (PostgreSQL, Prometheus: seconds each), or when its module runs
# drills, browsers, notebooks or irkit in subprocesses (listed here, each for its reason). `make test` runs all.
SLOW_FIXTURES = frozenset({"pg_lab", "prom_lab", "cfg"})
SLOW_MODULES = frozenset({
    "tests/drill/test_drill.py",  # whole incidents staged and run through five phases
    "tests/drill/test_environment.py",  # a drill's servers started, kept up, and stopped by Ctrl-C
    "tests/drill/test_run.py",  # a drill that applies its confirmed plan and recovers
    "tests/drill/test_printed_commands.py",  # every printed command pasted into kubectl against a drill
    "tests/drill/test_hostile.py",  # the hostile-data drill end to end, its report in a browser
    "tests/lab",  # the lab's real servers and kubectl against the emulator
    "tests/actions/test_kube.py",  # every action applied, verified and undone against the services
    "tests/actions/test_pg.py",  # the same against PostgreSQL
    "tests/actions/test_service.py",  # the same against Redis and an HTTP endpoint
    "tests/phases",  # notebooks and phases against the services, faults injected, processes killed
    "tests/evidence/test_remote.py",  # an S3 server (moto) in a subprocess
    "tests/test_deploy.py",  # the image, the Job, the RBAC against the emulator
    "tests/test_install.py",  # a fresh virtualenv
    "tests/test_notebooks.py",  # nbval over every notebook
    "tests/runner/test_run.py",  # irkit run end to end
    "tests/serve/test_webhook.py",  # irkit serve listening on a port
    "tests/serve/test_queue.py",  # irkit serve listening on a port, stopped and started again
    "tests/serve/test_serve.py",  # Alertmanager and irkit serve as processes
    "tests/test_cli.py",  # irkit in a subprocess per case
    "tests/test_incident_loop.py",  # a drill, irkit serve, JupyterLab in a browser, runs pasted into a shell
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        uses = set(getattr(item, "fixturenames", ()))
        if uses & SLOW_FIXTURES or any(where == m or where.startswith(m + "/") for m in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
