"""A real Alertmanager (Debian's ``prometheus-alertmanager``) whose one receiver is a webhook with a bearer token.

Groups by ``alertname`` and sends at once (``group_wait`` 0 s, ``group_interval`` 1 s), resolved groups too, so
a test sees the firing and the resolved notification within seconds. Alerts come from a Prometheus whose rules
fire (:meth:`irkit.lab.prometheus.PrometheusLab.route_alerts`) or are posted to :meth:`post`.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from typing import Any

from irkit.lab import ServerProcess, find_binary, free_port

__all__ = ["AlertmanagerLab"]


@dataclass
class AlertmanagerLab(ServerProcess):
    webhook_url: str
    token: str
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> AlertmanagerLab:
        binary = find_binary("prometheus-alertmanager", "prometheus-alertmanager")
        self._root = tempfile.mkdtemp(prefix="irkit-alertmanager-")
        config = os.path.join(self._root, "alertmanager.yml")
        with open(config, "w") as fh:  # JSON is YAML
            json.dump({
                "route": {"receiver": "irkit", "group_by": ["alertname"], "group_wait": "0s",
                          "group_interval": "1s", "repeat_interval": "1h"},
                "receivers": [{"name": "irkit", "webhook_configs": [{
                    "url": self.webhook_url, "send_resolved": True,
                    "http_config": {"authorization": {"type": "Bearer", "credentials": self.token}}}]}],
            }, fh)
        self.port = free_port()
        self._launch("alertmanager", [binary, f"--config.file={config}", f"--storage.path={self._root}/data",
                                      f"--web.listen-address={self.address}", "--cluster.listen-address="],
                     f"{self.url}/-/ready")
        return self

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """Alerts as Prometheus sends them (``/api/v2/alerts``): labels, annotations, startsAt, endsAt."""
        request = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

