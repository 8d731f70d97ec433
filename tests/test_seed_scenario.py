"""The seed design's worked example as a scenario: groups 0/1/2 with OpenAI and
Anthropic, two local LLMs round-robin, and a mock, as each tier fails and recovers."""

from __future__ import annotations

import trio
import trio.testing

from ciris_actors import CircuitBreakerConfig, open_registry
from ciris_actors.testing import FakeProvider, register_seed_llm_setup

BREAKER = CircuitBreakerConfig(
    failure_threshold=2, recovery_timeout=30.0, success_threshold=1, timeout_duration=5.0
)


async def ask(registry: object, n: int) -> list[str]:
    """Send *n* requests through call() and return who answered each."""
    answers = []
    for i in range(n):
        answer = await registry.call("ActionSelectionPDMA", "llm", FakeProvider.handle, i)  # type: ignore[attr-defined]
        answers.append(answer.split(":")[0])
    return answers


async def test_failover_order_as_each_tier_fails_and_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(
        required_services=["llm"], default_breaker=BREAKER, health_check_interval=10.0
    ) as registry:
        providers = register_seed_llm_setup(registry)
        openai, anthropic = providers["openai"], providers["anthropic"]
        local1, local2 = providers["local1"], providers["local2"]
        assert await registry.wait_ready(5.0)

        # All healthy: group 0, OpenAI first.
        assert await ask(registry, 3) == ["openai"] * 3

        # OpenAI fails: its calls fail over to Anthropic, then its breaker opens.
        openai.failing = True
        assert await ask(registry, 4) == ["anthropic"] * 4
        assert openai.calls == 5  # 3 good + 2 failures, then the breaker opened
        assert registry.explain("ActionSelectionPDMA", "llm").chosen == "anthropic"

        # Group 0 gone entirely: round-robin over the local pool.
        anthropic.failing = True
        answers = await ask(registry, 6)
        assert answers == ["local1", "local2"] * 3

        # The pool fails its health checks: the mock tier answers.
        local1.healthy = local2.healthy = False
        await trio.sleep(10.5)  # health checks run every 10 s
        assert await ask(registry, 2) == ["mock"] * 2
        assert registry.health_status()["overall_health"] == "degraded"

        # Recovery, bottom-up: the pool comes back at its next health check.
        local1.healthy = local2.healthy = True
        await trio.sleep(10.0)
        assert set(await ask(registry, 4)) == {"local1", "local2"}

        # Group 0 recovers: after recovery_timeout a probe goes to OpenAI and closes it.
        openai.failing = anthropic.failing = False
        await trio.sleep(30.0)
        assert await ask(registry, 3) == ["openai"] * 3
        assert registry.health_status()["overall_health"] == "degraded"  # anthropic still half-open
        assert registry.get_provider_info()["circuit_breaker_stats"]["openai"]["state"] == "closed"
