"""Runs kept in object storage: ``--outputs s3://BUCKET/PREFIX`` and ``irkit verify s3://...``.

A run is written as it always is, into a local directory (a staging copy under the temp dir), and each file
goes to the bucket once it is final: after every phase, and after sealing. A run interrupted midway leaves in
the bucket what it finished, as it does on disk; a run whose upload failed keeps everything in its staging
directory and says where. Before the run starts, the incident's earlier runs are copied down (their records,
not their notebooks or report) so the timeline and the histories see them.

The bucket is reached through fsspec's s3fs: credentials the AWS way from the environment (``AWS_ACCESS_KEY_ID``
and ``AWS_SECRET_ACCESS_KEY``, a profile, or a pod's web identity), an S3-compatible store (MinIO, Ceph) through
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``. Every request has a connect and read timeout, two attempts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from irkit.errors import ParameterError, RunError
from irkit.evidence.rundir import RunDir, make_dir

__all__ = ["Remote", "fetch", "is_remote"]

# Not copied down for the history of an incident: the earlier runs' pages and notebooks, read by nobody here.
_NOT_PULLED = (".ipynb", ".html", ".png")


def is_remote(outputs: str | os.PathLike[str]) -> bool:
    return "://" in str(outputs)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


class Remote:
    """One ``s3://bucket/prefix``: runs under ``<prefix>/<incident>/<run id>/``."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        scheme, _, rest = url.partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme != "s3" or not bucket:
            raise ParameterError(f"--outputs {url[:60]!r}: evidence goes to a directory or to s3://BUCKET/PREFIX")
        try:
            import s3fs
        except ModuleNotFoundError as exc:
            raise ParameterError("--outputs s3:// needs s3fs: pip install 'irkit[s3]'") from exc
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        self.url = f"s3://{bucket}/{prefix.strip('/')}".rstrip("/")
        self.root = f"{bucket}/{prefix.strip('/')}".rstrip("/")
        self.bucket = bucket
        self.fs = s3fs.S3FileSystem(
            skip_instance_cache=True, endpoint_url=endpoint,
            config_kwargs={"connect_timeout": 5, "read_timeout": timeout,
                           "retries": {"max_attempts": 2, "mode": "standard"}})
        self._sent: dict[Path, tuple[int, int]] = {}

    def _fail(self, error: type[Exception], what: str, exc: BaseException) -> Exception:
        return error(f"{self.url}: {what} failed ({_reason(exc)}); check the bucket, AWS_ACCESS_KEY_ID / "
                     "AWS_SECRET_ACCESS_KEY (or the pod's role) and AWS_ENDPOINT_URL_S3 for an S3-compatible store")

    def pull(self, incident: str, outputs: Path) -> int:
        """Copy the incident's earlier runs (records, data, not notebooks or pages) into ``outputs/<incident>/``;
        the number of files. Refused as bad input (exit 2) when the bucket cannot be read: nothing has run yet."""
        base = f"{self.root}/{incident}"
        try:
            if not self.fs.exists(self.bucket):
                raise FileNotFoundError(f"no bucket {self.bucket}")
            found = self.fs.find(base) if self.fs.exists(base) else []
            return self.download([k for k in found if not k.endswith(_NOT_PULLED)], base, outputs / incident)
        except Exception as exc:  # s3fs and botocore raise their own; all mean the store cannot be read
            raise self._fail(ParameterError, "reading the incident's earlier runs", exc) from exc

    def download(self, keys: list[Any], base: str, local: Path) -> int:
        """Copy ``keys`` (under ``base`` in the bucket) to the same relative paths under ``local``; how many."""
        for key in keys:
            relative = PurePosixPath(key[len(base) + 1:])
            if not key.startswith(base + "/") or relative.is_absolute() or ".." in relative.parts:
                raise ParameterError(f"{self.url}: the key {key[:120]!r} would land outside {local}; a run's keys "
                                     "are plain names under it")
            target = local.joinpath(*relative.parts)
            make_dir(target.parent)
            self.fs.get_file(key, str(target))
        return len(keys)

    def push(self, run_dir: Path, to: str = "") -> list[str]:
        """Upload what changed in ``run_dir`` since the last push (the manifest last) to :meth:`location`, or to
        the run URL ``to``; the files sent."""
        target = (to or self.location(run_dir)).rstrip("/").removeprefix("s3://")
        # Regular files only: a link planted in the run would otherwise upload whatever it points at.
        files = sorted(RunDir(run_dir).files(), key=lambda p: p == RunDir(run_dir).manifest)
        sent = []
        try:
            for path in files:
                stat = path.stat()
                if self._sent.get(path) == (stat.st_size, stat.st_mtime_ns):
                    continue
                rel = path.relative_to(run_dir).as_posix()
                self.fs.put_file(str(path), f"{target}/{rel}")
                self._sent[path] = (stat.st_size, stat.st_mtime_ns)
                sent.append(rel)
        except Exception as exc:
            raise self._fail(RunError, f"uploading {run_dir.name} (kept in {run_dir})", exc) from exc
        return sent

    def location(self, run_dir: Path) -> str:
        """Where a run lives in the bucket: ``s3://bucket/prefix/<incident>/<run id>``."""
        return f"{self.url}/{run_dir.parent.name}/{run_dir.name}"


def fetch(url: str, *, timeout: float = 30.0) -> Path:
    """A run in the bucket copied whole into a new temporary directory (for ``irkit verify`` and ``seal``)."""
    remote = Remote(url, timeout=timeout)
    base = remote.root
    local = Path(tempfile.mkdtemp(prefix="irkit-verify-")) / base.rsplit("/", 1)[-1]
    try:
        keys: list[Any] = remote.fs.find(base)
        if not keys:
            raise FileNotFoundError(f"nothing under {url}")
        remote.download(keys, base, local)
    except Exception as exc:
        raise remote._fail(ParameterError, "reading the run", exc) from exc
    return local
