"""The ``redis_server`` fixtures start a real Redis, take it away and bring it back."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from .redis_server import INSTALL_HINT, RedisServer, ping, require_redis_server


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_server_answers_ping_on_its_url(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.password is None
    assert redis_server.running
    assert ping(redis_server.port)


def test_stop_refuses_connections_and_start_comes_back_on_the_same_port(
    redis_server: RedisServer,
) -> None:
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.running
    assert refused(port)
    redis_server.stop()  # stopping a stopped server does nothing

    redis_server.start()
    assert redis_server.port == port
    assert ping(port)

    redis_server.stop(graceful=True)
    assert refused(port)
    redis_server.start()
    assert ping(port)


def test_start_twice_is_an_error(redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        redis_server.start()


def test_nothing_is_saved_to_the_temporary_directory(redis_server: RedisServer) -> None:
    redis_server.stop(graceful=True)  # a shutdown saves, when saving is configured
    assert [path.name for path in redis_server.directory.iterdir()] == ["redis-1.log"]


def test_the_password_server_wants_its_password(redis_password_server: RedisServer) -> None:
    port = redis_password_server.port
    assert redis_password_server.password == "secret"
    assert redis_password_server.url == f"redis://:secret@127.0.0.1:{port}/0"
    assert ping(port, "secret")
    assert not ping(port)  # -NOAUTH instead of +PONG


async def test_a_trio_test_talks_to_it(redis_server: RedisServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", redis_server.port)
    async with stream:
        await stream.send_all(b"*1\r\n$4\r\nPING\r\n")
        assert await stream.receive_some(7) == b"+PONG\r\n"
    redis_server.stop()
    with pytest.raises(OSError, match="failed"):
        await trio.open_tcp_stream("127.0.0.1", redis_server.port)


def test_without_redis_server_the_tests_fail_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        require_redis_server()
    assert str(failed.value) == INSTALL_HINT
    assert "apt-get install redis-server" in INSTALL_HINT
