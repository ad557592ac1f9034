"""A kubeconfig for tests that need a cluster which does not answer (a closed port) or hangs (a black hole)."""

from __future__ import annotations

import json
from pathlib import Path


def kubeconfig_for(address: str, path: Path, name: str = "c", namespace: str = "prod") -> Path:
    """A kubeconfig at ``path`` whose one cluster is ``http://address``, with a token, in ``namespace``."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": f"http://{address}"}}],
        "users": [{"name": name, "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}]}))
    return path
