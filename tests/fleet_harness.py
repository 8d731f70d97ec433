"""One set of fleet behaviours, run on every fleet store.

``tests/test_fleet.py`` states DESIGN.md section 7's rules as tests against a
:class:`Harness`; each store gives one. :class:`MemoryHarness` runs on virtual time;
:class:`RedisHarness` on a real ``redis-server`` and real time, which is why the timings
here are short and every wait is on an event under a deadline.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from ciris_actors import CircuitBreakerConfig, CircuitState, Registry, open_registry
from ciris_actors.events import RegistryEvent
from ciris_actors.fleet import FleetLink, FleetStatus, MemoryFleet, RedisFleet
from ciris_actors.outcomes import ErrorClass

from .redis_server import RedisServer

#: Short enough for real time against Redis; round numbers for virtual time.
BREAKER = CircuitBreakerConfig(
    failure_threshold=2, recovery_timeout=1.0, success_threshold=1, timeout_duration=1.0
)
#: How long a test waits for something the fleet should do before failing.
PATIENCE = 5.0
#: How often ``until`` looks at a condition no event announces.
TICK = 0.02


class Harness(Protocol):
    """A fleet store the rules are checked on."""

    name: str

    def link(self, node: str, *, quorum: int = 1, quorum_window: float = 60.0) -> FleetLink:
        """A link for node *node* (one quorum setting per store: the first link's)."""

    async def stop_store(self) -> None:
        """Stop the store, losing what it held."""

    async def start_store(self) -> None:
        """Start it again, empty."""


class MemoryHarness:
    """The rules on a :class:`MemoryFleet` (*hub*, or one made by the first link), on
    virtual time."""

    name = "memory"

    def __init__(self, hub: MemoryFleet | None = None) -> None:
        self.hub = hub

    def link(self, node: str, *, quorum: int = 1, quorum_window: float = 60.0) -> FleetLink:
        if self.hub is None:
            self.hub = MemoryFleet(quorum=quorum, quorum_window=quorum_window)
        return self.hub.node(node)

    async def stop_store(self) -> None:
        assert self.hub is not None
        self.hub.take_down()
        await trio.lowlevel.checkpoint()

    async def start_store(self) -> None:
        assert self.hub is not None
        self.hub.bring_up()
        await trio.lowlevel.checkpoint()


class RedisHarness:
    """The rules on a real ``redis-server`` (the ``redis_server`` fixture's), in a
    namespace of the test's own, on real time."""

    name = "redis"

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.namespace = f"test-{secrets.token_hex(6)}"

    def link(self, node: str, *, quorum: int = 1, quorum_window: float = 60.0) -> FleetLink:
        return RedisFleet(self.server.url, node, self.namespace, quorum, quorum_window)

    async def stop_store(self) -> None:
        # Killing and restarting a process blocks for a moment: not on the event loop.
        await trio.to_thread.run_sync(self.server.stop)

    async def start_store(self) -> None:
        await trio.to_thread.run_sync(self.server.start)


class RateLimited(Exception):
    """A 429 with a Retry-After of ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after:g} s")
        self.retry_after = retry_after


class KeyRevoked(Exception):
    """A 401 that will not get better."""


def classify_test_error(error: BaseException) -> ErrorClass | None:
    """The registry classifier of the fleet tests."""
    if isinstance(error, RateLimited):
        return ErrorClass.rate_limited(error.retry_after)
    if isinstance(error, KeyRevoked):
        return ErrorClass.disable("key revoked")
    return None


class Provider:
    """A provider with nothing to start or check: routable at once."""


@asynccontextmanager
async def node(
    harness: Harness,
    node_id: str,
    *,
    quorum: int = 1,
    providers: tuple[str, ...] = ("primary", "backup"),
    ready: bool = True,
) -> AsyncIterator[Registry]:
    """A registry on node *node_id* with *providers* registered by name, the first of
    the highest priority."""
    link = harness.link(node_id, quorum=quorum)
    async with open_registry(
        fleet=link,
        health_check_interval=None,
        default_breaker=BREAKER,
        classify=classify_test_error,
    ) as registry:
        for index, name in enumerate(providers):
            priority = "critical" if index == 0 else "normal"
            registry.register("agent", "llm", Provider(), priority=priority, name=name)
        if ready:
            assert await registry.wait_ready(PATIENCE, ["llm"])
        yield registry


def in_state(registry: Registry, name: str, wanted: CircuitState) -> Callable[[], bool]:
    """A condition for :func:`until`: provider *name*'s breaker is *wanted*."""
    return lambda: state(registry, name) is wanted


def state(registry: Registry, name: str) -> CircuitState:
    """The state of provider *name*'s breaker in *registry*."""
    for view in registry.snapshot():
        if view.name == name:
            return CircuitState(view.breaker["state"])
    raise AssertionError(f"no provider {name!r}")


async def until(
    registry: Registry,
    condition: Callable[[], bool] | None = None,
    *,
    what: str,
    event: Callable[[RegistryEvent], bool] | None = None,
    patience: float = PATIENCE,
) -> list[RegistryEvent]:
    """Wait (on *registry*'s events, never polling) until *condition* holds, or an event
    matching *event* arrives; return the events seen meanwhile.

    Raises:
      AssertionError: *patience* seconds passed first (naming *what*).
    """
    seen: list[RegistryEvent] = []
    async with registry.events(max_buffer=10_000) as events:
        if condition is not None and condition():
            return seen
        with trio.move_on_after(patience):
            while True:
                # Events wake it; a fleet status changes without one, so it also looks
                # again every TICK (a condition re-checked, not a pause to settle).
                with trio.move_on_after(TICK):
                    async for each in events:
                        seen.append(each)
                        if event is not None and event(each):
                            return seen
                        if condition is not None and condition():
                            return seen
                if condition is not None and condition():
                    return seen
    raise AssertionError(f"still waiting after {patience:g} s for {what}; saw {seen}")


def status(registry: Registry) -> FleetStatus:
    """*registry*'s fleet status (it must have a fleet)."""
    current = registry.fleet_status()
    assert current is not None, "the registry has no fleet"
    return current
