"""The run directory's one owner: every file name in it, and how each file is written and read.

:class:`RunDir` names each file of a run (``run.json``, ``phase-N.json``, the notebooks, ``data/``, ``outbox/``,
``summary.json``, ``report.html``, ``postmortem.md``, ``timeline.json``, ``lock-history.json``, ``drill.json``,
``manifest.json``): no other module spells them.

Each file is written atomically, privately, and never through a link.

A run directory is evidence, and it sits where other people and other programs can reach: a planted symlink
(``report.html`` -> ``~/.bashrc``), a FIFO in place of ``summary.json``, a ``/dev/zero`` link or a file of
gigabytes must neither be written through nor hang or exhaust the reader. So every file irkit writes into a
run goes through :func:`write_bytes` (a temp name created exclusively beside it, then renamed over the name:
a reader sees the old file or the new one, and a symlink in the way is replaced, never followed), and every
file it reads back through :func:`read_bytes` (opened without following a link and without blocking, a
regular file only, at most ``max_bytes``).

Directories are created private (0700), files 0600: the evidence holds what the incident's systems said.
With ``evidence_group`` set, :func:`harden` gives that group read access (0750 and 0640) when a run is sealed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irkit import playbook
from irkit.errors import ConfigError

__all__ = ["DATA", "DRILL", "LOCK_HISTORY", "MANIFEST", "MAX_JSON", "OUTBOX", "POSTMORTEM", "REPORT", "RUN",
           "SUMMARY", "TIMELINE", "RunDir", "harden", "make_dir", "read_bytes", "read_json", "read_text", "regular",
           "reopened", "write_bytes", "write_json", "write_text"]

# The names of a run directory's files, here and nowhere else.
RUN = "run.json"  # written when a run starts: what it set out to do, so a run cut short can be sealed later
SUMMARY, REPORT, POSTMORTEM = "summary.json", "report.html", "postmortem.md"
TIMELINE, LOCK_HISTORY, DRILL, MANIFEST = "timeline.json", "lock-history.json", "drill.json", "manifest.json"
OUTBOX, DATA = "outbox", "data"
_PHASE_RECORD = re.compile(r"phase-([1-9])\.json")


@dataclass(frozen=True)
class RunDir:
    """One run directory, ``outputs/<incident>/<run id>/``: the path of each of its files."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        """The run id."""
        return self.path.name

    @property
    def run_json(self) -> Path:
        return self.path / RUN

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def report(self) -> Path:
        return self.path / REPORT

    @property
    def postmortem(self) -> Path:
        return self.path / POSTMORTEM

    @property
    def timeline(self) -> Path:
        return self.path / TIMELINE

    @property
    def lock_history(self) -> Path:
        return self.path / LOCK_HISTORY

    @property
    def drill(self) -> Path:
        return self.path / DRILL

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def outbox(self) -> Path:
        """The directory of the messages written (one ``<id>.json`` each)."""
        return self.path / OUTBOX

    @property
    def data(self) -> Path:
        """The directory of the full series behind the charts."""
        return self.path / DATA

    def phase_json(self, phase: int) -> Path:
        return self.path / f"phase-{phase}.json"

    def phase_link(self, phase: int) -> str:
        """``phase-N.json`` as the timeline links it: relative to the incident's directory."""
        return f"{self.name}/{self.phase_json(phase).name}"

    def phases_recorded(self) -> list[int]:
        """The phases that left a record here (``phase-N.json``), in order."""
        return sorted(int(m.group(1)) for p in self.path.glob("phase-*.json") if (m := _PHASE_RECORD.fullmatch(p.name)))

    def notebook(self, phase: int) -> Path:
        """The executed notebook of phase ``phase``."""
        return self.path / f"{playbook.phase(phase).notebook}.ipynb"

    def data_file(self, phase: int, name: str) -> str:
        """Where the full series ``name`` of a phase goes, relative to the run (as a chart links it)."""
        return f"{DATA}/phase{phase}-{name}.csv"

    def image(self, name: str) -> Path:
        """A chart drawn as a PNG for the post-mortem."""
        return self.path / f"postmortem-{name}.png"

    def message(self, message_id: str) -> Path:
        return self.outbox / f"{Path(message_id).name}.json"

    def messages(self) -> list[Path]:
        return sorted(self.outbox.glob("*.json")) if self.outbox.is_dir() and not self.outbox.is_symlink() else []

    def files(self) -> Iterator[Path]:
        """Every regular file of the run (links and special files are not the run's)."""
        return (p for p in self.path.rglob("*") if regular(p))

MAX_JSON = 64 << 20  # a record, summary or manifest read back; real ones are a few KiB to a few MiB
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def make_dir(path: Path, mode: int = 0o700) -> Path:
    """``path`` and its missing parents, created with ``mode``; an existing symlink or file in the way is a
    ConfigError (irkit never writes evidence where a link points)."""
    for part in reversed([path, *path.parents]):
        try:
            info = part.lstat()
        except FileNotFoundError:
            try:
                part.mkdir(mode=mode)
            except FileExistsError:
                info = part.lstat()  # made by someone else meanwhile: checked below like any other
            else:
                continue
        if part in (path, path.parent) and not stat.S_ISDIR(info.st_mode):
            kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
            raise ConfigError(f"{part} is {kind}: irkit keeps evidence only in directories it made; move it away "
                              "or name another --outputs")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (0600): a temp file created exclusively in the same directory, then
    renamed over ``path``. A symlink at ``path`` is replaced, not followed; one at the temp name cannot exist."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> Path:
    """``data`` as JSON (indented, anything else as its ``str``), written like :func:`write_bytes`."""
    return write_bytes(path, json.dumps(data, indent=2, default=str).encode())


def regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (not a symlink to one, not a FIFO or device)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def read_bytes(path: Path, max_bytes: int = MAX_JSON) -> bytes | None:
    """The bytes of ``path`` when it is a regular file of at most ``max_bytes``; None otherwise (missing, a link,
    a FIFO, a device, too large, unreadable). Never blocks: a FIFO is opened non-blocking and refused."""
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        os.set_blocking(fd, True)
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return data if len(data) <= max_bytes else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_text(path: Path, max_bytes: int = MAX_JSON) -> str | None:
    data = read_bytes(path, max_bytes)
    return data.decode("utf-8", errors="replace") if data is not None else None


def read_json(path: Path, max_bytes: int = MAX_JSON) -> Any:
    """The JSON in ``path`` (read like :func:`read_bytes`), or None when it is not there, not JSON, or not a
    regular file of at most ``max_bytes``: a reader never fails, or hangs, on what a run left behind."""
    data = read_bytes(path, max_bytes)
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _gid(group: str) -> int:
    import grp
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise ConfigError(f"evidence_group={group!r}: no such group on this machine; create it or fix the key") \
            from exc


def _set_mode(path: Path, mode: int, gid: int) -> None:
    """chmod (and chgrp) ``path`` itself, through a descriptor opened without following a link."""
    if not (stat.S_ISREG(path.lstat().st_mode) or stat.S_ISDIR(path.lstat().st_mode)):
        return  # a link, a FIFO, a device: never opened
    fd = os.open(path, _READ)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
            if gid >= 0:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode | ((mode & 0o444) >> 2) if stat.S_ISDIR(info.st_mode) else mode)
    finally:
        os.close(fd)


def harden(run_dir: Path, group: str = "", *, read_only: bool = True) -> None:
    """Seal the run's modes: its files owner-only and read-only (0400) in read-only directories (0500), or with
    ``group`` readable by that group too (0440, 0550, group-owned); ``read_only=False`` gives the owner write
    access back (0600, 0700) for a moment (:func:`reopened`). Links and special files are left alone (``irkit
    verify`` reports them). Mode bits stop an editor run by anyone but root; JupyterLab started by ``irkit lab``
    refuses to save into a sealed run whoever runs it."""
    gid = _gid(group) if group else -1
    mode = (0o440 if group else 0o400) | (0 if read_only else 0o200)
    for root, dirs, names in os.walk(run_dir):
        for name in [*dirs, *names]:
            with contextlib.suppress(OSError):
                _set_mode(Path(root, name), mode, gid)
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    with contextlib.suppress(OSError):
        _set_mode(run_dir, mode, gid)


@contextlib.contextmanager
def reopened(run_dir: Path, group: str = "") -> Iterator[Path]:
    """A sealed run made writable by its owner while irkit adds to it (the drill's comparison, a message sent
    later) and re-signs it; read-only again afterwards, whatever happened."""
    harden(run_dir, group, read_only=False)
    try:
        yield run_dir
    finally:
        harden(run_dir, group)
