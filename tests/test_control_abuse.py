"""The control plane under abuse: HTTP/2, slow and oversized bodies, connection floods,
many event streams and churn, over real loopback sockets, with bounded counts and time.

Each test asserts that a legitimate client is answered throughout, that the registry is
untouched, and that nothing (task, subscription, connection) is left behind. Waits are
on sockets and events; ``trio.fail_after`` is only a hang guard.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import httpx
import pytest
import trio
import trio.testing

from ciris_actors import (
    Registry,
    open_registry,
)
from ciris_actors.control import (
    ControlServer,
    _server as server_module,
    create_app,
    serve_control_api,
)
from ciris_actors.testing import FakeProvider

from .helpers import SLOW_RECOVERY as BREAKER, TaskCounter, event_subscriptions

TOKEN = "abuse-token-9c1e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/v1/runtime/services"
HANG_GUARD = 30.0


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[Registry, ControlServer]]:
    """A registry with one provider behind a control plane; on exit, checks that the
    server left no task and no event subscription behind."""
    counter = TaskCounter()
    with trio.fail_after(HANG_GUARD):
        async with open_registry(
            required_services=["llm"], health_check_interval=None, default_breaker=BREAKER
        ) as registry:
            registry.register("H", "llm", FakeProvider("primary"), "HIGH", name="primary")
            assert await registry.wait_ready()
            subscriptions = event_subscriptions()
            trio.lowlevel.add_instrument(counter)
            try:
                async with serve_control_api(registry, port=0, token=TOKEN, **options) as server:
                    yield registry, server
                await trio.testing.wait_all_tasks_blocked()
                assert counter.live == set(), f"left running: {counter.live}"
                assert event_subscriptions() == subscriptions
            finally:
                trio.lowlevel.remove_instrument(counter)


async def health(server: ControlServer) -> int:
    """A legitimate client's request on a fresh connection: its status."""
    async with httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD) as client:
        return (await client.get(f"{BASE}/health", headers=AUTH)).status_code


async def connect(server: ControlServer) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", server.port)


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = await stream.receive_some()
        except trio.BrokenResourceError:  # reset: closed with our bytes unread
            return data
        if not chunk:
            return data
        data += chunk


async def send_until_refused(stream: trio.SocketStream, data: bytes) -> None:
    """Send *data* over and over until the peer's close makes sending fail."""
    for _ in range(1000):
        await stream.send_all(data)
    raise AssertionError("the server never closed the connection")


# -- HTTP/2 -------------------------------------------------------------------------------


def h2_client() -> h2.connection.H2Connection:
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    return connection


async def h2_exchange(
    stream: trio.SocketStream, connection: h2.connection.H2Connection
) -> list[h2.events.Event]:
    """Send what the client has queued, then read events until the server closes."""
    await stream.send_all(connection.data_to_send())
    events: list[h2.events.Event] = []
    data = await read_until_closed(stream)
    if data:
        events += connection.receive_data(data)
    return events


@pytest.mark.parametrize("path", [f"{BASE}/primary/priority", "/nowhere", "/metrics"])
async def test_http2_with_prior_knowledge_is_refused_and_the_server_lives_on(path: str) -> None:
    # The attack that used to end the server: HEADERS without END_STREAM, then, after the
    # reply, a DATA frame on the closed stream. Now the connection is refused before any
    # stream exists, with HTTP_1_1_REQUIRED, whatever follows.
    async with served() as (registry, server):
        before = registry.get_provider_info()
        for _ in range(3):
            stream = await connect(server)
            client = h2_client()
            client.send_headers(
                1,
                [
                    (":method", "PUT"),
                    (":path", path),
                    (":scheme", "http"),
                    (":authority", "127.0.0.1"),
                ],
                end_stream=False,
            )
            events = await h2_exchange(stream, client)
            terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
            assert len(terminated) == 1
            assert terminated[0].error_code == h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
            assert terminated[0].additional_data == b"use HTTP/1.1"
            frame = (1).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big") + b"x"
            with pytest.raises(trio.BrokenResourceError):  # DATA after the refusal
                await send_until_refused(stream, frame)
            await stream.aclose()
            assert await health(server) == 200
        assert registry.get_provider_info() == before


async def test_an_h2c_upgrade_is_answered_in_http_1_1() -> None:
    async with served() as (_, server), await connect(server) as stream:
        request = (
            f"GET {BASE}/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        await stream.send_all(request.encode())
        head = await stream.receive_some()
        assert head.startswith(b"HTTP/1.1 200 "), head[:40]
        assert b"101" not in head.split(b"\r\n")[0]


# -- bodies ---------------------------------------------------------------------------------


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> MutableMapping[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }


async def test_a_body_with_neither_length_nor_chunking_is_still_limited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # HTTP/2 frames a body without Content-Length or chunked encoding: an app mounted in
    # a server that speaks HTTP/2 must count it all the same.
    async with open_registry(health_check_interval=None) as registry:
        registry.register("H", "llm", FakeProvider("primary"), name="primary")
        app = create_app(registry, token=TOKEN, max_body_bytes=1024)
        before = registry.get_provider_info()
        sent: list[MutableMapping[str, Any]] = []
        chunks = iter([b'{"priority": "LOW"' + b" " * 600, b" " * 600, b"}"])

        async def receive() -> MutableMapping[str, Any]:
            chunk = next(chunks)
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {TOKEN}".encode())]
        try:
            await app(_scope("PUT", f"{BASE}/primary/priority", headers), receive, send)
        finally:
            app.state.close()
        assert sent[0]["status"] == 413
        assert next(chunks) == b"}"  # refused as soon as it passed the limit
        assert registry.get_provider_info() == before


async def test_a_body_that_does_not_arrive_in_time_is_408_and_changes_nothing() -> None:
    async with served(request_timeout=0.5) as (registry, server):
        before = registry.get_provider_info()
        async with await connect(server) as stream:
            await stream.send_all(
                f"PUT {BASE}/primary/priority HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
                '{"priority": '.encode()
            )
            answer = await read_until_closed(stream)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:40]
        assert b"connection: close" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == 408
        assert registry.get_provider_info() == before


async def test_a_head_that_does_not_arrive_in_time_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT", 0.3)
    async with served() as (_, server), await connect(server) as stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        assert await read_until_closed(stream) == b""


# -- connections ----------------------------------------------------------------------------


async def test_a_connection_past_the_cap_sheds_the_longest_idle_one() -> None:
    async with served(max_connections=4) as (_, server):
        idle = [await connect(server) for _ in range(4)]
        for stream in idle:  # each sends half a head and stalls
            await stream.send_all(b"GET /metrics HTTP/1.1\r\n")
        assert await health(server) == 200  # sheds the oldest idle one to get in
        assert await read_until_closed(idle[0]) == b""
        for stream in idle:
            await stream.aclose()


async def test_when_every_connection_is_busy_a_new_one_is_told_503() -> None:
    async with (
        served(max_connections=2) as (_, server),
        httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD) as first,
        httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD) as second,
        first.stream("GET", "/v1/runtime/events", headers=AUTH) as one,
        second.stream("GET", "/v1/runtime/events", headers=AUTH) as two,
    ):
        assert one.status_code == two.status_code == 200
        async with await connect(server) as stream:
            answer = await read_until_closed(stream)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:40]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == 503


async def test_many_event_streams_and_churn_under_traffic_leave_nothing_behind() -> None:
    async with served(max_connections=64) as (registry, server), trio.open_nursery() as nursery:

        async def subscriber(done: trio.Event) -> None:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD) as client,
                client.stream("GET", "/v1/runtime/events", headers=AUTH) as response,
            ):
                assert response.status_code == 200
                await done.wait()

        done = trio.Event()
        for _ in range(40):
            nursery.start_soon(subscriber, done)
        for round_ in range(20):  # churn: providers come and go under traffic
            name = registry.register("H", "llm", FakeProvider(f"p{round_}"))
            assert await health(server) == 200
            registry.unregister(name)
        done.set()


# -- a process with few file descriptors -------------------------------------------------------

SERVER = textwrap.dedent(
    """
    import sys, trio
    from ciris_actors import open_registry
    from ciris_actors.testing import FakeProvider
    from ciris_actors.control import serve_control_api

    async def main():
        async with open_registry(health_check_interval=None) as registry:
            registry.register("H", "llm", FakeProvider("p"), name="p")
            async with serve_control_api(registry, port=0, token=sys.argv[1]) as server:
                print(server.port, server.max_connections, flush=True)
                await trio.sleep_forever()

    trio.run(main)
    """
)


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@pytest.fixture
def low_fd_server() -> Iterator[tuple[int, int]]:
    """The control plane in a process limited to 256 file descriptors: (port, cap)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_low_fd_limit,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        port, cap = process.stdout.readline().split()
        yield int(port), int(cap)
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
        process.stdout.close()  # type: ignore[union-attr]


async def test_slow_unauthenticated_clients_never_lock_out_the_token_holder(
    low_fd_server: tuple[int, int],
) -> None:
    # 400 clients, more than the process has descriptors for, trickling in a body or a
    # request head; the ones shed or refused come straight back. Throughout, a client with
    # the token must be answered, each time within 2 s.
    port, cap = low_fd_server
    assert cap == 64  # a quarter of 256
    answered: list[int] = []
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:

            async def slow_client(head: bytes, trickle: bytes) -> None:
                while True:
                    try:
                        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                            await stream.send_all(head)
                            for _ in range(20):
                                await stream.send_all(trickle)
                                await trio.sleep(0.5)
                    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                        await trio.sleep(0.05)

            # A quarter trickle a body they declared, the rest never finish their head.
            body = f"PUT {BASE}/p/priority HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            body += "Content-Length: 16000\r\n\r\n"
            for i in range(400):
                if i % 4 == 0:
                    nursery.start_soon(slow_client, body.encode(), b" ")
                else:
                    nursery.start_soon(slow_client, b"GET /metrics HTTP/1.1\r\n", b"X-Slow: 1\r\n")
            async with httpx.AsyncClient(timeout=2.0) as client:
                for _ in range(10):
                    await trio.sleep(0.3)
                    response = await client.get(
                        f"http://127.0.0.1:{port}{BASE}/health",
                        headers={**AUTH, "Connection": "close"},
                    )
                    answered.append(response.status_code)
            nursery.cancel_scope.cancel()
    assert answered == [200] * 10


def test_the_default_cap_leaves_most_descriptors_to_the_registry() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = server_module.default_max_connections()
    assert 4 <= cap <= 128
    if soft != resource.RLIM_INFINITY:
        assert cap <= max(4, soft // 4)
