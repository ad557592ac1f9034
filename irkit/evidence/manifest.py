"""Sealing and checking a run: ``manifest.json`` (SHA-256 of every file, signed with HMAC-SHA256 when a key is
configured), what ``irkit verify`` finds against it, how far an unsealed run got, and whether an earlier run's
records may be believed (Post-Incident 2: preserve evidence).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.errors import ConfigError, ParameterError
from irkit.evidence.rundir import MANIFEST, RUN, RunDir, read_json, write_json

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "VIEWER_DIRS", "RunState", "Trust", "run_state", "signed", "trust", "verify",
           "write_manifest"]

# The key that signs manifests (HMAC-SHA256), from the environment or a file; never from irkit.toml.
KEY_ENV, KEY_FILE_ENV = "IRKIT_EVIDENCE_KEY", "IRKIT_EVIDENCE_KEY_FILE"


def _sha256(path: Path) -> str:
    """The file's digest, read through a descriptor that follows no link and blocks on nothing; a path that is
    not a regular file (swapped for a FIFO or a link since it was listed) digests as such, never read."""
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        os.set_blocking(fd, True)
        while block := os.read(fd, 1 << 20):
            digest.update(block)
    finally:
        os.close(fd)
    return digest.hexdigest()


# What viewers create beside evidence they open (JupyterLab's checkpoints): not evidence, never reported.
VIEWER_DIRS = frozenset({".ipynb_checkpoints"})


@dataclass(frozen=True)
class _Tree:
    files: dict[str, str]  # regular file -> SHA-256 (the manifest itself left out)
    odd: list[str]  # what is not a regular file or a directory: "name (symlink)"
    dirs: set[str]  # directories (not symlinks to them)


def _walk(run_dir: Path) -> _Tree:
    """One walk of the run directory, with lstat: a symlink is reported, never followed (it could point
    anywhere, or at a FIFO that blocks a reader forever); viewers' directories are passed over."""
    tree = _Tree({}, [], set())
    for root, dirs, names in os.walk(run_dir):
        dirs[:] = [d for d in dirs if d not in VIEWER_DIRS]
        for name in sorted(dirs + names):
            path = Path(root, name)
            rel = str(path.relative_to(run_dir))
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                tree.dirs.add(rel)
            elif stat.S_ISREG(mode):
                if rel != MANIFEST:
                    tree.files[rel] = _sha256(path)
            else:
                kind = "symlink" if stat.S_ISLNK(mode) else "FIFO" if stat.S_ISFIFO(mode) else "special file"
                tree.odd.append(f"{rel} ({kind})")
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    return tree


def _key() -> bytes | None:
    """The manifest signing key: ``IRKIT_EVIDENCE_KEY``, or the file ``IRKIT_EVIDENCE_KEY_FILE`` names."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    path = os.environ.get(KEY_FILE_ENV)
    if not path:
        return None
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{KEY_FILE_ENV}={path!r} cannot be read ({exc.strerror}); fix the path or unset it") \
            from exc
    if not key:
        raise ConfigError(f"{KEY_FILE_ENV}={path!r} is empty; put the signing key in it or unset it")
    return key


def _signature(key: bytes, files: dict[str, str]) -> str:
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def write_manifest(run_dir: Path) -> Path:
    """``manifest.json``: SHA-256 of every file, signed with HMAC-SHA256 when a key is configured."""
    tree = _walk(run_dir)
    files = tree.files
    manifest: dict[str, Any] = {"algorithm": "sha256", "files": files, "directories": sorted(tree.dirs)}
    key = _key()
    if key is not None:
        manifest["signature"] = {"algorithm": "hmac-sha256", "value": _signature(key, files)}
    return write_json(RunDir(run_dir).manifest, manifest)


@dataclass(frozen=True)
class RunState:
    """What a run directory holds: the run it set out to be and how far each phase got."""

    incident: str
    started_at: datetime
    phases: list[int]
    found: dict[int, str]  # phase -> "complete" | "partial" | "skipped"
    sealed: bool

    def describe(self) -> str:
        groups: dict[str, list[int]] = {}
        for phase in self.phases:
            groups.setdefault(self.found[phase], []).append(phase)
        return ", ".join(f"phase{'s' if len(p) > 1 else ''} {_span(p)} {state}" for state, p in groups.items())


def _span(phases: list[int]) -> str:
    return f"{phases[0]}-{phases[-1]}" if len(phases) > 1 and phases == list(
        range(phases[0], phases[-1] + 1)) else ",".join(map(str, phases))


def run_state(run_dir: Path) -> RunState:
    """How far the run in ``run_dir`` got, from ``run.json`` and each phase's record; a directory that is
    no run is a ParameterError."""
    if not run_dir.is_dir():
        raise ParameterError(f"{run_dir} is not a directory; name a run directory like outputs/INC-123/<run id>")
    run = RunDir(run_dir)
    meta = read_json(run.run_json)
    recorded = run.phases_recorded()
    if not isinstance(meta, dict) and not recorded and not run.manifest.exists():
        raise ParameterError(f"{run_dir} is not a run directory (no {RUN}, {MANIFEST} or phase records); "
                             "name one like outputs/INC-123/<run id>")
    meta = meta if isinstance(meta, dict) else {}
    planned = meta.get("phases")
    phases = recorded
    if isinstance(planned, list) and all(isinstance(p, int) for p in planned):
        phases = sorted(set(planned) | set(phases))
    started = meta.get("started")
    started = started if isinstance(started, list) else []
    found: dict[int, str] = {}
    for phase in phases:
        record = read_json(run.phase_json(phase))
        if isinstance(record, dict) and record.get("finished_at"):
            found[phase] = "complete"
        elif record is not None or phase in started or run.notebook(phase).exists():
            found[phase] = "partial"
        else:
            found[phase] = "skipped"
    try:
        started_at = datetime.fromisoformat(str(meta.get("started_at")))
    except ValueError:
        started_at = datetime.fromtimestamp(run_dir.stat().st_mtime, UTC)
    incident = str(meta.get("incident") or run_dir.parent.name)
    return RunState(incident, started_at, phases, found, run.manifest.exists())


def verify(run_dir: str | Path) -> dict[str, list[str]]:
    """What differs from the manifest: files ``changed``, ``added`` and ``removed``, anything ``unexpected``
    (a symlink, a FIFO, a directory the manifest does not list), and ``signature`` problems.

    A run directory without a manifest (its process died before sealing) is ``unfinished``, with how
    far each phase got and the command that seals it; a manifest that is not one is a ParameterError.
    """
    run_dir = Path(run_dir)
    state = run_state(run_dir)
    if not state.sealed:
        return {"unfinished": [f"{state.describe() or 'no phase recorded'}; nothing sealed it (its process "
                               f"died). Seal what is there with: irkit seal {shlex.quote(str(run_dir))}"]}
    manifest = read_json(RunDir(run_dir).manifest)
    recorded = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(recorded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()):
        raise ParameterError(f"{RunDir(run_dir).manifest} is not an irkit manifest (JSON with a 'files' table of "
                             "name -> sha256); the evidence cannot be checked against it")
    tree = _walk(run_dir)
    now, odd = tree.files, list(tree.odd)
    listed_dirs = manifest.get("directories")
    # Manifests before directories were listed: any directory holding a listed file is expected.
    expected_dirs = set(listed_dirs) if isinstance(listed_dirs, list) else {
        str(parent) for name in recorded for parent in Path(name).parents if str(parent) != "."}
    odd += [f"{d}/ (directory)" for d in sorted(tree.dirs - expected_dirs)]
    problems = {
        "changed": sorted(name for name in recorded if name in now and now[name] != recorded[name]),
        "added": sorted(set(now) - set(recorded)),
        "removed": sorted(set(recorded) - set(now)),
        "unexpected": sorted(odd),
        "signature": _check_signature(manifest, recorded),
    }
    return problems


def _check_signature(manifest: dict[str, Any], recorded: dict[str, str]) -> list[str]:
    key = _key()
    signature = manifest.get("signature")
    value = signature.get("value") if isinstance(signature, dict) else None
    if key is None:
        return []  # nothing to check against; the CLI says the signature was not checked
    if not isinstance(value, str):
        return [f"the manifest is not signed, but {KEY_ENV} is set: it was written without the key, or re-sealed"]
    if not hmac.compare_digest(value, _signature(key, recorded)):
        return ["the manifest's signature does not match: it was edited or re-sealed without the key"]
    return []


@dataclass(frozen=True)
class Trust:
    """Whether an earlier run's records may be believed: ``verified`` (its files match its manifest, signed with
    the key when one is set), ``unsealed`` (no manifest yet: still running, killed, or an interactive run) or
    ``tampered`` (``problems`` says how it differs)."""

    state: str
    problems: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.state == "tampered":
            return "does not match its manifest (" + "; ".join(self.problems[:3]) + ")"
        return "not sealed, so not verified" if self.state == "unsealed" else "verified"


_TRUSTED: dict[tuple[str, int, int], Trust] = {}


def trust(run_dir: Path) -> Trust:
    """:class:`Trust` of a run, checked with :func:`verify` once per state of its manifest (cached)."""
    try:
        info = RunDir(run_dir).manifest.lstat()
    except OSError:
        return Trust("unsealed")
    cache = (str(run_dir.resolve()), info.st_mtime_ns, info.st_size)
    if cache not in _TRUSTED:
        try:
            found = verify(run_dir)
        except (ParameterError, ConfigError) as exc:
            _TRUSTED[cache] = Trust("tampered", (str(exc)[:200],))
        else:
            problems = tuple(f"{kind}: {name}" for kind, names in found.items() for name in names)
            _TRUSTED[cache] = Trust("tampered" if problems else "verified", problems)
    return _TRUSTED[cache]


def signed(run_dir: Path) -> bool | None:
    """Whether the manifest carries a signature (None: no readable manifest)."""
    manifest = read_json(RunDir(run_dir).manifest)
    return isinstance(manifest.get("signature"), dict) if isinstance(manifest, dict) else None
