"""The clients actions use: opened on first use only, bounded by the configuration's timeouts, and a database
action without its own role refused before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit import config
from irkit.actions import Systems
from irkit.errors import ActionError
from tests.support.kube import kubeconfig_for


def test_a_database_action_without_pg_action_dsn_is_refused_naming_the_key():
    systems = Systems(config.load(env={}))
    with pytest.raises(ActionError, match="database actions need pg_action_dsn.*IRKIT_PG_ACTION_DSN"):
        _ = systems.pg


def test_a_cache_client_is_made_on_first_use_bounded_by_the_timeouts_and_kept(closed_port: str):
    cfg = config.load(env={}, redis_url=f"redis://{closed_port}/2", connect_timeout=1.5, request_timeout=4.0)
    systems = Systems(cfg)
    client = systems.redis  # made, not connected: nothing listens there
    bounds = client.connection_pool.connection_kwargs
    assert (bounds["socket_connect_timeout"], bounds["socket_timeout"], bounds["db"]) == (1.5, 4.0, 2)
    assert systems.redis is client
    systems.close()


def test_the_cluster_client_is_the_one_given_or_made_from_the_configuration_on_first_use(closed_port: str,
                                                                                      tmp_path: Path):
    kubeconfig = kubeconfig_for(closed_port, tmp_path / "kubeconfig", "c")
    systems = Systems(config.load(env={}, kubeconfig=str(kubeconfig)))
    kube = systems.kube
    assert kube.source == f"Kubernetes API at http://{closed_port}" and systems.kube is kube
    assert Systems(systems.config, kube=kube).kube is kube


def test_closing_what_was_never_opened_is_nothing():
    Systems(config.load(env={})).close()
