"""The drill's Redis: a real redis-server on a free port of 127.0.0.1, nothing persisted, a restart on the same
port, and nothing left behind when it stops."""

from __future__ import annotations

import socket
from pathlib import Path

import redis

from irkit.lab.redis import RedisLab


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_it_answers_on_its_url_keeps_nothing_and_stops_without_a_trace():
    with RedisLab() as lab:
        root = Path(lab._root)
        assert lab.url == f"redis://127.0.0.1:{lab.port}/0"
        client = redis.Redis.from_url(lab.url, socket_timeout=5)
        try:
            client.set("cart:42", "3 items")
            assert client.get("cart:42") == b"3 items"
            assert client.config_get("save") == {"save": ""} and client.config_get("appendonly")["appendonly"] == "no"
            assert client.config_get("bind")["bind"] == "127.0.0.1"
        finally:
            client.close()
    assert not _listening(lab.port)
    assert not root.exists()


def test_a_restarted_redis_keeps_its_port_and_starts_empty():
    lab = RedisLab().start()
    try:
        port = lab.port
        client = redis.Redis.from_url(lab.url, socket_timeout=5)
        client.set("k", "v")
        client.close()
        lab.stop()
        lab.start()
        assert lab.port == port
        client = redis.Redis.from_url(lab.url, socket_timeout=5)
        assert client.dbsize() == 0  # a cache that went down comes back cold
        client.close()
    finally:
        lab.stop()


def test_a_password_and_a_full_maxmemory_refuse_as_redis_does():
    import pytest

    with RedisLab(password="drill-only-secret", maxmemory="2mb") as lab:
        stranger = redis.Redis.from_url(lab.url, socket_timeout=2, protocol=2)  # never given the password; RESP2
        with pytest.raises(redis.exceptions.AuthenticationError, match="Authentication required"):
            stranger.ping()
        assert "drill-only-secret" not in " ".join(lab._proc.args)  # not on the command line (ps shows that)
        lab.fill()
        owner = redis.Redis.from_url(f"redis://:drill-only-secret@127.0.0.1:{lab.port}/0", socket_timeout=2)
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="command not allowed when used memory > 'maxmemory'"):
            owner.set("one-more", "x" * 1024)
        assert owner.get("filler:0") is not None  # noeviction: nothing was thrown away
        owner.close()
        stranger.close()
