"""Registry.observe(): the handle that counts and times resolves while attached."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ciris_actors import Registry, RegistryError, ResolveObserver, open_registry

from .helpers import Plain


async def test_nothing_is_counted_before_an_observer_attaches_or_after_it_detaches(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), name="a")
    for _ in range(5):
        registry.get_service_nowait("H", "llm")
        registry.get_service_nowait("H", "nothing")
    with registry.observe() as observer:
        assert isinstance(observer, ResolveObserver)
        assert observer.hits == {"llm": 0}
        assert observer.misses == {}
        for _ in range(3):
            registry.get_service_nowait("H", "llm")
        registry.get_service_nowait("H", "nothing")
        assert observer.hits == {"llm": 3}
        assert observer.misses == {"nothing": 1}
        assert registry.view("a").selections == 3
    assert not observer.attached
    registry.get_service_nowait("H", "llm")
    registry.get_service_nowait("H", "nothing")
    assert registry.view("a").selections == 3  # detached: nothing counted


async def test_counts_are_shared_and_counting_lasts_while_any_observer_is_attached(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), name="a")
    first = registry.observe()
    second = registry.observe()
    registry.get_service_nowait("H", "llm")
    first.detach()
    first.detach()  # idempotent: it does not release the second one's hold
    registry.get_service_nowait("H", "llm")
    assert second.hits == {"llm": 2}
    assert first.hits == {"llm": 2}  # a detached observer still reads the shared counts
    second.detach()
    registry.get_service_nowait("H", "llm")
    assert registry.view("a").selections == 2


async def test_hits_of_unregistered_providers_stay_in_their_types_total(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    with registry.observe() as observer:
        name = registry.register("H", "llm", Plain("a"))
        registry.get_service_nowait("H", "llm")
        registry.get_service_nowait("H", "llm")
        registry.unregister(name)
        registry.register("H", "llm", Plain("b"))
        registry.get_service_nowait("H", "llm")
        assert observer.hits == {"llm": 3}


async def test_every_resolve_path_is_counted(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), name="a")

    async def use(provider: Plain) -> str:
        await trio.lowlevel.checkpoint()
        return provider.label

    with registry.observe() as observer:
        registry.get_service_nowait("H", "llm")
        await registry.get_service("H", "llm")
        async with registry.lease("H", "llm"):
            pass
        assert await registry.call("H", "llm", use) == "a"
        assert observer.hits == {"llm": 4}


async def test_timing_covers_exactly_the_resolves_armed(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"))
    with registry.observe() as observer:
        for _ in range(100):
            registry.get_service_nowait("H", "llm")
        assert observer.timing.count == 64  # attaching arms 64
        observer.arm_timing(10)
        for _ in range(30):
            registry.get_service_nowait("H", "llm")
        timing = observer.timing
        assert timing.count == 74
        assert len(timing.counts) == len(timing.bounds) + 1
        assert timing.total > 0
    with pytest.raises(RegistryError, match="detached"):
        observer.arm_timing()


async def test_a_closed_registry_cannot_be_observed() -> None:
    async with open_registry() as registry:
        pass
    with pytest.raises(RegistryError, match="closed"):
        registry.observe()
