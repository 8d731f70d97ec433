"""The test helpers of ``ciris_actors.testing`` (its strategies and staging are in
test_testing_strategies.py): the provider conformance check."""

from __future__ import annotations

import trio
import trio.testing

from ciris_actors.testing import FakeProvider, check_provider


async def test_check_provider_reports_closing_problems_and_checks_health_after_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class HangingClose:
        async def aclose(self) -> None:
            with trio.CancelScope(shield=True):
                await trio.sleep(10.0)

    class RaisingClose:
        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()
            raise OSError("socket already gone")

    class NeedsStart:
        def __init__(self) -> None:
            self.client: object | None = None

        async def start(self) -> None:
            await trio.lowlevel.checkpoint()
            self.client = object()

        async def is_healthy(self) -> bool:
            await trio.lowlevel.checkpoint()
            return self.client is not None

    assert any("not closed within 1s" in p for p in await check_provider(HangingClose(), timeout=1))
    assert any("socket already gone" in p for p in await check_provider(RaisingClose()))
    assert await check_provider(NeedsStart()) == []


async def test_conformance_check_passes_a_good_provider_and_names_problems(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await check_provider(FakeProvider("good")) == []

    class Sloppy:
        def is_healthy(self) -> bool:
            return True

        async def start(self) -> None:
            await trio.sleep_forever()

    problems = await check_provider(Sloppy(), timeout=1.0)
    assert any("is_healthy() is not a coroutine function" in p for p in problems)
    assert any("not routable within 1s" in p for p in problems)


def test_the_testing_helpers_are_exported_under_their_public_names() -> None:
    import ciris_actors.testing as testing
    import ciris_actors.testing.strategies as strategies

    for name in testing.__all__:
        value = getattr(testing, name)
        if not name.isupper():
            assert value.__module__ == "ciris_actors.testing", name
        assert getattr(strategies, name, value) is value, name
    for name in strategies.__all__:
        assert hasattr(strategies, name), name
    assert {"stage", "staging_registry", "ProviderSpec"} <= set(testing.__all__)
    assert {"breaker_configs", "provider_sets", "fault_schedules"} <= set(strategies.__all__)
