"""Evidence in object storage: ``--outputs s3://`` and ``irkit verify s3://`` against a real S3 server (moto's).

A run writes into a local staging directory and copies each finished file to the bucket; these tests read the
bucket, never the staging copy: what a team finds there is the evidence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs

from irkit.config import Config
from irkit.evidence.remote import Remote
from tests.evidence.test_manifest import IRKIT
from tests.support.s3 import S3Lab

BUCKET = "irkit-evidence"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Lab]:
    with S3Lab() as lab:
        fs = s3fs.S3FileSystem(endpoint_url=lab.url, key="k", secret="s")
        fs.mkdir(BUCKET)
        yield lab


@pytest.fixture()
def env(s3: S3Lab) -> dict[str, str]:
    """The environment of a run: credentials and endpoint from the environment, no ~/.aws, no metadata server."""
    return {**os.environ, **s3.environment(), "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


@pytest.fixture()
def toml(cfg: Config, tmp_path: Path) -> Path:
    path = tmp_path / "irkit.toml"
    path.write_text(f'[kubernetes]\nkubeconfig = "{cfg.kubeconfig}"\n[postgres]\npg_dsn = "{cfg.pg_dsn}"\n'
                    f'[prometheus]\nprom_url = "{cfg.prom_url}"\n[http]\nhealth_endpoints = []\n')
    return path


def bucket(s3: S3Lab) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=s3.url, key="k", secret="s", skip_instance_cache=True)


def irkit(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IRKIT, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_a_run_lands_in_the_bucket_verifies_there_and_a_later_run_reads_it(s3, env, toml, tmp_path):
    url = f"s3://{BUCKET}/runs"
    first = irkit("run", "--incident", "INC-S3", "--phases", "1-2", "--config", str(toml), "--outputs", url,
                  env=env, cwd=tmp_path)
    assert first.returncode in (0, 3), first.stderr[-2000:]
    location = first.stdout.strip()
    assert location.startswith(f"{url}/INC-S3/"), first.stdout
    keys = {k.rsplit("/", 1)[-1] for k in bucket(s3).find(location[5:])}
    assert {"01-detect-and-assess.ipynb", "02-investigate.ipynb", "phase-1.json", "phase-2.json", "summary.json",
            "report.html", "manifest.json", "run.json"} <= keys
    verified = irkit("verify", location, env=env, cwd=tmp_path)
    assert verified.returncode == 0 and f"ok: every file in {location} matches" in verified.stdout, verified
    # The bucket's copy is what is checked: a changed object there fails verify.
    bucket(s3).pipe(f"{location[5:]}/phase-2.json", b'{"tampered": true}')
    tampered = irkit("verify", location, env=env, cwd=tmp_path)
    assert tampered.returncode == 1 and "phase-2.json" in tampered.stdout
    # A later run of the incident copies the earlier runs' records down (not their notebooks or pages).
    pulled = tmp_path / "pulled"
    os.environ.update(s3.environment())
    assert Remote(url).pull("INC-S3", pulled) > 0
    names = {p.name for p in pulled.rglob("*") if p.is_file()}
    assert {"run.json", "phase-1.json"} <= names and not any(n.endswith((".ipynb", ".html")) for n in names)


def test_a_run_interrupted_midway_leaves_in_the_bucket_what_it_finished(s3, env, toml, tmp_path):
    url = f"s3://{BUCKET}/cut"
    proc = _start_and_wait_for_phase_1(url, "INC-CUT", env, toml, tmp_path, s3)
    fs = bucket(s3)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: phase 1 is in the bucket, phase 2 under way
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    fs.invalidate_cache()
    [location] = {k.rsplit("/", 1)[0] for k in fs.find(f"{BUCKET}/cut") if k.endswith("run.json")}
    summary = json.loads(fs.cat(f"{location}/summary.json"))
    statuses = {p["phase"]: p["status"] for p in summary["phases"]}
    assert statuses[1] == "ok" and "interrupted" in statuses.values() and statuses[5] == "skipped", statuses
    assert f"s3://{location}" in err  # the message says where the evidence is
    assert irkit("verify", f"s3://{location}", env=env, cwd=tmp_path).returncode == 0


def _start_and_wait_for_phase_1(url: str, incident: str, env: dict[str, str], toml: Path, cwd: Path,
                                s3: S3Lab) -> subprocess.Popen[str]:
    proc = subprocess.Popen([IRKIT, "run", "--incident", incident, "--config", str(toml), "--outputs", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            start_new_session=True)
    fs, prefix = bucket(s3), url.removeprefix("s3://")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not [k for k in fs.find(prefix) if k.endswith("01-detect-and-assess.ipynb")]:
        time.sleep(0.2)
        fs.invalidate_cache()
    return proc


def test_a_job_killed_midway_leaves_an_unfinished_run_that_seal_closes_in_the_bucket(s3, env, toml, tmp_path):
    url = f"s3://{BUCKET}/killed"
    proc = _start_and_wait_for_phase_1(url, "INC-KILLED", env, toml, tmp_path, s3)
    os.killpg(proc.pid, signal.SIGKILL)  # the node was lost: nothing seals the run
    proc.communicate(timeout=60)
    fs = bucket(s3)
    [location] = {k.rsplit("/", 1)[0] for k in fs.find(f"{BUCKET}/killed") if k.endswith("run.json")}
    unfinished = irkit("verify", f"s3://{location}", env=env, cwd=tmp_path)
    assert unfinished.returncode == 1 and "unfinished run" in unfinished.stdout, unfinished.stdout
    sealed = irkit("seal", f"s3://{location}", env=env, cwd=tmp_path)
    assert sealed.returncode == 0 and sealed.stdout.strip() == f"s3://{location}", sealed.stderr
    assert "phase 1 ok" in sealed.stderr
    assert irkit("verify", f"s3://{location}", env=env, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(("outputs", "change", "says"), [
    (f"s3://no-such-bucket-{os.getpid()}/runs", {}, "no bucket"),
    (f"s3://{BUCKET}/runs", {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "AWS_ACCESS_KEY_ID"),
    ("gs://bucket/runs", {}, "s3://BUCKET/PREFIX"),
])
def test_a_store_that_cannot_be_used_is_one_line_before_anything_runs(s3, env, toml, tmp_path, outputs, change, says):
    result = irkit("run", "--incident", "INC-BAD", "--phases", "1", "--config", str(toml), "--outputs", outputs,
                   env={**{k: v for k, v in env.items() if k not in change or change[k]}, **{
                       k: v for k, v in change.items() if v}}, cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
