"""A real Prometheus server whose history is backfilled from generated OpenMetrics.

The history is described per service as segments of steady traffic (requests per
second, 5xx share, p95 latency), turned into counters and histogram buckets,
written as OpenMetrics and imported with ``promtool tsdb create-blocks-from
openmetrics``. History runs into the future too (``ahead``), so "now" has data for
the whole life of a test session or drill without live scraping.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from irkit.errors import DrillError
from irkit.lab import ServerProcess, find_binary, free_port

__all__ = ["BUCKETS", "Counters", "MetricNames", "PrometheusLab", "Segment", "ServiceHistory", "exposition", "openmetrics"]

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Segment:
    """Steady traffic from ``start`` to ``end`` seconds relative to now (negative = past)."""

    start: float
    end: float
    rps: float
    error_ratio: float
    p95_seconds: float


@dataclass(frozen=True)
class ServiceHistory:
    service: str
    segments: tuple[Segment, ...]
    noise: float = 0.0  # relative jitter of rps, error ratio and latency per step

    def at(self, offset: float) -> Segment | None:
        for segment in self.segments:
            if segment.start <= offset < segment.end:
                return segment
        return None


@dataclass(frozen=True)
class MetricNames:
    """What the exported series are called, as a team's instrumentation names them (irkit's ``prom_*`` keys).

    ``status_format``: ``"code"`` writes each status (``200``, ``500``, ``503``), ``"class"`` its class (``2xx``,
    ``5xx``) as some exporters do, ``"digit"`` the class's digit alone (``2``, ``5``: Envoy's
    ``envoy_response_code_class``). ``latency_unit`` ``"ms"``: the histogram counts milliseconds (Istio's
    ``istio_request_duration_milliseconds``, Envoy's ``envoy_cluster_upstream_rq_time``). When ``requests`` is the latency histogram's ``_count`` (Micrometer's
    ``http_server_requests_seconds_count``), the histogram itself carries the status label and there is no
    separate counter. A counter named without ``_total`` (``nginx_ingress_controller_requests``) is written as
    an untyped family, the only way OpenMetrics holds such a name.
    """

    requests: str = "http_requests_total"
    latency: str = "http_request_duration_seconds"
    status: str = "status"
    service: str = "service"
    status_format: str = "code"
    latency_unit: str = "s"

    @property
    def scale(self) -> float:
        """The histogram's unit per second."""
        return 1000.0 if self.latency_unit == "ms" else 1.0

    @property
    def combined(self) -> bool:
        """The request counter is the latency histogram's ``_count``."""
        return self.requests == f"{self.latency}_count"

    def code(self, code: str) -> str:
        return {"class": f"{code[0]}xx", "digit": code[0]}.get(self.status_format, code)


def _below(le: float, p95: float) -> float:
    """Share of requests faster than ``le`` for an exponential latency with the given p95."""
    return 1.0 - math.exp(-le * math.log(20.0) / p95)


class Counters:
    """The cumulative counters of one service: requests by status and the latency histogram."""

    def __init__(self) -> None:
        self.ok = self.err500 = self.err503 = 0.0
        self.buckets = [0.0] * (len(BUCKETS) + 1)  # the last one is +Inf, the count
        self.latency_sum = 0.0

    def add(self, requests: float, error_ratio: float, p95_seconds: float) -> None:
        """``requests`` more requests, ``error_ratio`` of them 5xx, latency exponential with that p95."""
        ratio = min(1.0, max(0.0, error_ratio))
        p95 = max(0.001, p95_seconds)
        self.ok += requests * (1 - ratio)
        self.err500 += requests * ratio * 0.7
        self.err503 += requests * ratio * 0.3
        for i, le in enumerate(BUCKETS):
            self.buckets[i] += requests * _below(le, p95)
        self.buckets[-1] += requests
        self.latency_sum += requests * p95 / math.log(20.0)  # mean of that exponential

    def samples(self, service: str, names: MetricNames | None = None) -> dict[str, list[tuple[str, float]]]:
        """Per metric family, ``(series, value)`` in exposition order."""
        names = names or MetricNames()
        labels = f'{names.service}="{_label_value(service)}"'
        by_status = [(names.code(code), value) for code, value in (("200", self.ok), ("500", self.err500),
                                                                   ("503", self.err503))]
        if names.status_format in ("class", "digit"):  # 500 and 503 are one series: 5xx (or 5)
            by_status = [(by_status[0][0], by_status[0][1]), (names.code("500"), self.err500 + self.err503)]
        bounds = [("+Inf" if le == math.inf else repr(le * names.scale)) for le in (*BUCKETS, math.inf)]
        latency_sum = self.latency_sum * names.scale
        total = self.buckets[-1] or 1.0
        if names.combined:  # one histogram per status: each status's share of every bucket and of the sum
            histogram = []
            for code, value in by_status:
                share, series = value / total, f'{labels},{names.status}="{code}"'
                histogram += [(f'{names.latency}_bucket{{{series},le="{le}"}}', bucket * share)
                              for le, bucket in zip(bounds, self.buckets, strict=True)]
                histogram += [(f"{names.latency}_count{{{series}}}", value),
                              (f"{names.latency}_sum{{{series}}}", latency_sum * share)]
            return {names.latency: histogram}
        requests = [(f'{names.requests}{{{labels},{names.status}="{code}"}}', value) for code, value in by_status]
        histogram = [(f'{names.latency}_bucket{{{labels},le="{le}"}}', value)
                     for le, value in zip(bounds, self.buckets, strict=True)]
        histogram += [(f"{names.latency}_count{{{labels}}}", self.buckets[-1]),
                      (f"{names.latency}_sum{{{labels}}}", latency_sum)]
        return {names.requests.removesuffix("_total"): requests, names.latency: histogram}


def _label_value(value: str) -> str:
    """A label value as both exposition formats write it: backslash, double quote and line feed escaped (a
    scenario may name a service anything, a hostile one included)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _type_line(family: str, names: MetricNames, *, openmetrics: bool) -> str:
    if family == names.latency:
        return f"# TYPE {family} histogram"
    # OpenMetrics names a counter's samples <family>_total; a counter named otherwise is held untyped there.
    counter = names.requests.endswith("_total") or not openmetrics
    return f"# TYPE {family} {'counter' if counter else 'unknown'}"


def openmetrics(histories: Sequence[ServiceHistory], now: float, *, start: float, end: float,
                step: float = 15.0, names: MetricNames | None = None, seed: int = 7) -> str:
    """OpenMetrics text for the histories, samples every ``step`` s between now+start and now+end."""
    names = names or MetricNames()
    rng = random.Random(seed)
    families: dict[str, dict[str, list[str]]] = {}  # family -> series -> lines (a series stays together)
    offsets = [start + i * step for i in range(int((end - start) // step) + 1)]
    for history in histories:
        counters = Counters()
        for offset in offsets:
            if offset < history.segments[0].start:
                continue  # no series before the service existed (a new service, an exporter added late)
            segment = history.at(offset)
            if segment is not None:
                noise = history.noise
                counters.add(segment.rps * step * (1.0 + rng.uniform(-noise, noise)),
                             segment.error_ratio * (1.0 + rng.uniform(-noise, noise)),
                             segment.p95_seconds * (1.0 + rng.uniform(-noise, noise)))
            for family, samples in counters.samples(history.service, names).items():
                series = families.setdefault(family, {})
                for name, value in samples:
                    series.setdefault(name, []).append(f"{name} {value:.3f} {now + offset:.3f}")
    lines: list[str] = []
    for family, series in families.items():
        lines.append(_type_line(family, names, openmetrics=True))
        for series_lines in series.values():
            lines += series_lines
    return "\n".join([*lines, "# EOF", ""])


def exposition(counters: Mapping[str, Counters], names: MetricNames | None = None) -> str:
    """Prometheus text format (0.0.4) of live counters per service, for a ``/metrics`` endpoint."""
    names = names or MetricNames()
    families: dict[str, list[str]] = {}
    for service, counter in counters.items():
        for family, samples in counter.samples(service, names).items():
            families.setdefault(family, []).extend(f"{name} {value:.3f}" for name, value in samples)
    lines: list[str] = []
    for family, family_lines in families.items():
        lines.append(_type_line(family, names, openmetrics=False))
        lines += family_lines
    return "\n".join([*lines, ""])


@dataclass
class PrometheusLab(ServerProcess):
    """A Prometheus on a free port holding the backfilled histories."""

    histories: Sequence[ServiceHistory]
    history_start: float = -3 * 3600.0
    ahead: float = 2 * 3600.0
    step: float = 15.0
    scrape_targets: Iterable[str] = ()
    scrape_interval: str = "5s"
    names: MetricNames = field(default_factory=MetricNames)
    now: float = field(default_factory=time.time)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusLab:
        prometheus = find_binary("prometheus", "prometheus")
        promtool = find_binary("promtool", "prometheus")
        self._root = tempfile.mkdtemp(prefix="irkit-prom-")
        data = os.path.join(self._root, "data")
        source = os.path.join(self._root, "history.om")
        with open(source, "w") as fh:
            fh.write(openmetrics(self.histories, self.now, start=self.history_start, end=self.ahead, step=self.step,
                                 names=self.names))
        result = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", source, data],
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise DrillError(f"promtool could not backfill the history: {result.stderr.strip()[-500:]}")
        targets = list(self.scrape_targets)
        config = os.path.join(self._root, "prometheus.yml")
        with open(config, "w") as fh:
            fh.write(f"global:\n  scrape_interval: {self.scrape_interval}\n  evaluation_interval: 1s\n")
            if targets:
                # honor_labels: a service label the exporter sets itself (job, instance) stays the exporter's,
                # as the backfilled history has it, instead of becoming exported_job.
                fh.write("scrape_configs:\n  - job_name: live\n    honor_labels: true\n    static_configs:\n"
                         "      - targets: [")
                fh.write(", ".join(f"'{t}'" for t in targets) + "]\n")
        self.port = free_port()
        # A retention far longer than the history: retention counts from the newest
        # block, and the default would delete the backfilled past within a minute.
        self._launch("prometheus", [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                                    "--storage.tsdb.retention.time=100y",
                                    f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                     f"{self.url}/-/ready")
        return self

    def route_alerts(self, rules: str, alertmanager: str) -> None:
        """Add alerting rules (a rule file's YAML) and send what fires to ``alertmanager`` (host:port), as a team
        configures its Prometheus; the config is reloaded in place (``/-/reload``)."""
        with open(os.path.join(self._root, "rules.yml"), "w") as fh:
            fh.write(rules)
        with open(os.path.join(self._root, "prometheus.yml"), "a") as fh:
            fh.write(f"rule_files: ['{self._root}/rules.yml']\n"
                     f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n")
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

