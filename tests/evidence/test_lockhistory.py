"""The lock graph sampled through a run, against a real PostgreSQL 15: what irkit run's sampler keeps."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from irkit.config import Config
from irkit.evidence import lockhistory, rundir
from irkit.lab.postgres import PostgresLab
from irkit.rules.locks import episodes


def _wait_for(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the sampler did not record it in time"
        time.sleep(0.2)


def test_the_sampler_records_a_root_appearing_its_queue_and_its_clearing(pg_lab: PostgresLab, cfg: Config,
                                                                        tmp_path: Path):
    def taken() -> list[dict]:
        data = json.loads((tmp_path / rundir.LOCK_HISTORY).read_text()) \
            if (tmp_path / rundir.LOCK_HISTORY).exists() else {"samples": []}
        return data["samples"]

    with lockhistory.LockSampler(cfg, tmp_path, interval=0.1) as sampler:
        assert sampler.interval == lockhistory.MIN_INTERVAL  # a bound, whatever is asked
        _wait_for(lambda: len(taken()) >= 1)
        root = pg_lab.hold(["BEGIN", "UPDATE orders SET status = 'held' WHERE id = 3"])
        waiters = [pg_lab.hold(["UPDATE orders SET status = 'waiting' WHERE id = 3"]) for _ in range(2)]
        try:
            sampler.sample_once()
        finally:
            pg_lab.release()
        for held in [root, *waiters]:
            held.done.wait(10)
        sampler.sample_once()
    samples = taken()
    assert samples[0]["waiting"] == 0 and samples[0]["roots"] == []  # before: nothing waited
    [episode] = episodes(samples).to_dict("records")
    assert episode["root"] == root.pid and episode["state"] == "idle in transaction"
    assert episode["peak_waiting"] == 2 and "status = 'held'" in episode["query"]
    assert episode["cleared_at"] is not None and episode["cleared_at"] > episode["first_seen"]
    count = len(samples)
    time.sleep(lockhistory.MIN_INTERVAL + 0.5)
    assert len(taken()) == count  # stopped: nothing is written after the run is sealed


def test_a_database_that_does_not_answer_is_a_recorded_gap_not_an_error(cfg: Config, closed_port: str,
                                                                       tmp_path: Path):
    cfg = dataclasses.replace(cfg, pg_dsn=f"postgresql://irkit@{closed_port}/web3marketplace")
    sampler = lockhistory.LockSampler(cfg, tmp_path, interval=5)
    taken = sampler.sample_once()
    sampler.stop()
    assert "roots" not in taken and closed_port in taken["error"]  # the error names what did not answer
    assert episodes([taken]).empty
    assert lockhistory.run_samples(tmp_path) == [taken]  # read back with the phases' samples (none here)
