"""A real S3-compatible server on 127.0.0.1: moto's standalone server (``moto.server``), for ``--outputs s3://``.

It speaks the S3 REST API as botocore sends it (SigV4, multipart, list-objects-v2); buckets live in its memory and
go with it. :meth:`S3Lab.environment` is what a run needs to reach it: the endpoint and a key pair.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass

from irkit.lab import ServerProcess, free_port

__all__ = ["S3Lab"]


@dataclass
class S3Lab(ServerProcess):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Lab:
        self._root = tempfile.mkdtemp(prefix="irkit-s3-")
        self.port = free_port()
        self._launch("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                     f"{self.url}/moto-api/data.json")
        return self

    def environment(self, key: str = "irkit-test-key", secret: str = "irkit-test-secret") -> dict[str, str]:
        """AWS_* variables pointing botocore (and so s3fs) at this server with a key pair moto accepts."""
        return {"AWS_ENDPOINT_URL_S3": self.url, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_DEFAULT_REGION": "us-east-1"}
