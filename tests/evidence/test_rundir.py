"""A run directory's files: written atomically and privately, never through a planted link; read without
blocking on a FIFO or a device, and never more than a bound. Then the commands that write into an existing run
(seal, send) on runs an attacker has been at."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path

import pytest

from irkit import evidence
from irkit.errors import ConfigError
from irkit.evidence import rundir
from tests.evidence.test_manifest import _cli, _run_dir

VICTIM = "the file a planted link points at\n"


@pytest.fixture()
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM)
    return path


def test_a_write_replaces_a_planted_link_and_never_writes_through_it(tmp_path: Path, victim: Path):
    (tmp_path / "summary.json").symlink_to(victim)
    rundir.write_json(tmp_path / "summary.json", {"ok": True})
    assert victim.read_text() == VICTIM
    assert not (tmp_path / "summary.json").is_symlink() and json.loads((tmp_path / "summary.json").read_text())
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temp file left


@pytest.mark.timeout(20)  # a FIFO opened for reading blocks forever: the bound turns a hang into a failure
def test_a_read_passes_over_fifos_links_devices_and_files_over_the_bound(tmp_path: Path):
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    (tmp_path / "big.json").write_bytes(b" " * 2048)
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert rundir.read_json(tmp_path / "fifo.json") is None
    assert rundir.read_json(tmp_path / "zero.json") is None
    assert rundir.read_json(tmp_path / "big.json", max_bytes=1024) is None
    assert rundir.read_json(tmp_path / "missing.json") is None
    assert rundir.read_json(tmp_path / "ok.json") == {"a": 1}


def test_a_run_directory_is_made_private_and_never_inside_a_planted_link(tmp_path: Path, victim: Path):
    made = rundir.make_dir(tmp_path / "outputs" / "INC-1" / "run")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in (made, made.parent, made.parent.parent))
    (tmp_path / "outputs" / "INC-2").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="is a symlink"):
        rundir.make_dir(tmp_path / "outputs" / "INC-2" / "run")


def test_sealed_evidence_is_read_only_and_the_owners_alone_or_its_groups_to_read(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    (run_dir / "notebook.ipynb").write_text("{}")
    os.chmod(run_dir / "notebook.ipynb", 0o666)
    rundir.harden(run_dir)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [run_dir, *run_dir.rglob("*")]}
    assert {m for name, m in modes.items() if (run_dir / name).is_dir() or name == run_dir.name} <= {0o500}
    assert modes["notebook.ipynb"] == 0o400 and modes["run.json"] == 0o400
    group = grp.getgrgid(os.getgid()).gr_name if os.getgid() else "daemon"
    rundir.harden(run_dir, group)
    info = (run_dir / "run.json").stat()
    assert stat.S_IMODE(info.st_mode) == 0o440 and info.st_gid == grp.getgrnam(group).gr_gid
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o550
    with pytest.raises(ConfigError, match="evidence_group"):
        rundir.harden(run_dir, "no-such-group-here")


def test_a_sealed_run_is_writable_by_its_owner_only_while_irkit_adds_to_it_and_read_only_after(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    rundir.harden(run_dir)
    with pytest.raises(RuntimeError), rundir.reopened(run_dir):
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((run_dir / "run.json").stat().st_mode) == 0o600
        raise RuntimeError("a send that failed half way")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o500  # read-only again, whatever happened
    assert stat.S_IMODE((run_dir / "run.json").stat().st_mode) == 0o400


@pytest.mark.slow  # irkit in a subprocess
@pytest.mark.timeout(60)
def test_seal_writes_nothing_through_planted_links_and_names_them(tmp_path: Path, victim: Path):
    run_dir = _run_dir(tmp_path, phases=(1, 2), finished=(1,))
    (run_dir / "report.html").symlink_to(victim)
    (run_dir / ".summary.json.tmp").symlink_to(victim)  # where an earlier irkit wrote its temp file
    os.mkfifo(run_dir / "phase-3.json")
    (run_dir / "data" / "zero.csv").symlink_to("/dev/zero")
    result = _cli("seal", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == VICTIM and not (run_dir / "report.html").is_symlink()
    assert "not evidence irkit wrote" in result.stderr and ".summary.json.tmp (symlink)" in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "data/zero.csv" not in summary["artifacts"]
    assert stat.S_IMODE((run_dir / "summary.json").stat().st_mode) == 0o400  # sealed: read-only


@pytest.mark.slow  # irkit in a subprocess
def test_send_refuses_to_re_sign_evidence_that_was_changed_after_sealing(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    key = {"IRKIT_EVIDENCE_KEY": "k" * 32}
    assert _cli("seal", str(run_dir), env=key).returncode == 0
    record = json.loads((run_dir / "phase-1.json").read_text())
    record["records"]["severity"]["name"] = "SEV-4"  # severity lowered by someone who can write outputs/
    (run_dir / "phase-1.json").write_text(json.dumps(record))
    manifest = (run_dir / evidence.MANIFEST).read_bytes()
    sent = _cli("send", str(run_dir), env=key)
    assert sent.returncode == 1 and "does not match its manifest" in sent.stderr and "phase-1.json" in sent.stderr
    assert (run_dir / evidence.MANIFEST).read_bytes() == manifest  # not re-signed
    checked = _cli("verify", str(run_dir), env=key)
    assert checked.returncode == 1 and "changed: phase-1.json" in checked.stdout


@pytest.mark.slow  # irkit in a subprocess
def test_send_writes_its_outbox_and_manifest_around_planted_links(tmp_path: Path, victim: Path):
    run_dir = _run_dir(tmp_path)
    (run_dir / "outbox").mkdir()
    (run_dir / "outbox" / "001-initial-email.json").write_text(json.dumps(
        {"id": "001-initial-email", "kind": "initial", "channel": "email", "stage": "initial", "to": "x@y.z",
         "subject": "s", "body": "b", "status": "outbox"}))
    assert _cli("seal", str(run_dir)).returncode == 0
    (run_dir / ".manifest.json.tmp").symlink_to(victim)  # planted after sealing, where a temp file once went
    (run_dir / "outbox" / ".001-initial-email.json.tmp").symlink_to(victim)
    sent = _cli("send", str(run_dir))
    assert sent.returncode == 1 and "does not match its manifest" in sent.stderr  # nothing written at all
    assert victim.read_text() == VICTIM
    for planted in (run_dir / ".manifest.json.tmp", run_dir / "outbox" / ".001-initial-email.json.tmp"):
        planted.unlink()
    sent = _cli("send", str(run_dir))  # no SMTP server configured: the send fails, is recorded, and re-sealed
    assert sent.returncode == 1 and "001-initial-email: failed" in sent.stderr
    message = json.loads((run_dir / "outbox" / "001-initial-email.json").read_text())
    assert message["status"] == "failed" and "no SMTP server" in message["attempts"][-1]["error"]
    assert not any(evidence.verify(run_dir).values())
