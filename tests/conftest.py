"""Shared fixtures: a registry on virtual time, and a real Redis server."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio.testing

from ciris_actors import CircuitBreakerConfig, Registry, open_registry

from .redis_server import RedisServer, launch, require_redis_server

#: Small, round numbers so virtual-time tests read easily.
FAST_BREAKER = CircuitBreakerConfig(
    failure_threshold=2, recovery_timeout=10.0, success_threshold=1, timeout_duration=5.0
)


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """A registry with a fast breaker. Tests using it must also request a clock fixture
    (pytest-trio only takes clocks from the test's own arguments)."""
    assert isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock), (
        "request autojump_clock or mock_clock in the test that uses this fixture"
    )
    async with open_registry(
        required_services=("llm",), health_check_interval=30.0, default_breaker=FAST_BREAKER
    ) as reg:
        yield reg


#: Virtual seconds after which a test on a mock clock is declared deadlocked.
WATCHDOG_SECONDS = 1_000_000.0


def _with_deadlock_watchdog(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Run an async test under a virtual-time deadline when it runs on a mock clock.

    On an autojumping clock a deadlocked test would otherwise spin forever (there is no
    deadline to jump to); with this one, virtual time jumps to it and the test fails at
    once with a clear message.
    """

    @functools.wraps(test)
    async def guarded(*args: object, **kwargs: object) -> None:
        if not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
            await test(*args, **kwargs)
            return
        try:
            with trio.fail_after(WATCHDOG_SECONDS):
                await test(*args, **kwargs)
        except trio.TooSlowError:
            raise AssertionError(
                f"deadlock: the test was still waiting after {WATCHDOG_SECONDS:g} virtual seconds"
            ) from None

    return guarded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every async test the deadlock watchdog."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.obj = _with_deadlock_watchdog(item.obj)


def run_on_virtual_time(scenario: Callable[[], Awaitable[None]]) -> None:
    """``trio.run`` *scenario* on an autojumping clock, under the deadlock watchdog (for
    hypothesis tests, which drive trio themselves)."""

    async def guarded() -> None:
        with trio.fail_after(WATCHDOG_SECONDS):
            await scenario()

    trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))


# -- a real Redis server -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_executable() -> str:
    """The ``redis-server`` on PATH. Fails (never skips) the tests that need it when there
    is none, saying how to install it."""
    return require_redis_server()


@pytest.fixture
def redis_server(redis_executable: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port, answering PING, no password.

    ``.stop()`` kills it and ``.start()`` brings it back on the same port; whatever state
    the test leaves it in, it is killed afterwards.
    """
    server = launch(redis_executable, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_password_server(redis_executable: str, tmp_path: Path) -> Iterator[RedisServer]:
    """As ``redis_server``, with ``--requirepass secret`` (in its ``.url`` too)."""
    server = launch(redis_executable, tmp_path, password="secret")
    try:
        yield server
    finally:
        server.stop()
