"""``ciris-actors demo``: the seed set-up on virtual time, its primary and then its
fallback failing and recovering, and which provider each request went to."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from .. import (
    BreakerTransition,
    CircuitBreakerConfig,
    NoServiceAvailable,
    Registry,
    open_registry,
)
from ..testing import FakeProvider, register_seed_llm_setup

__all__ = ["DemoArgs", "run"]


@attrs.frozen
class DemoArgs:
    """What ``demo`` was asked for.

    Attributes:
      requests: requests to send, one a second.
      fail_at: the request at which openai fails.
      both_at: the request at which anthropic fails too.
      recover_at: the request at which both recover.
    """

    requests: int
    fail_at: int
    both_at: int
    recover_at: int


def run(args: DemoArgs) -> int:
    """Run the demo on a virtual clock, printing as it goes; the exit status (0)."""
    trio.run(
        _demo,
        args.requests,
        args.fail_at,
        args.both_at,
        args.recover_at,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    return 0


async def _log_transitions(registry: Registry, start: float) -> None:
    async with registry.events() as events:
        async for event in events:
            if isinstance(event, BreakerTransition):
                print(
                    f"  t={event.time - start:5.1f}s  breaker {event.name}:"
                    f" {event.old.value} -> {event.new.value} ({event.reason})"
                )


async def _ask(provider: FakeProvider, request: int, tried: list[str]) -> str:
    tried.append(provider.name)
    return await provider.handle(request)


async def _demo(requests: int, fail_at: int, both_at: int, recover_at: int) -> None:
    breaker = CircuitBreakerConfig(
        failure_threshold=3, recovery_timeout=10.0, success_threshold=2, timeout_duration=5.0
    )
    async with open_registry(required_services=["llm"], default_breaker=breaker) as registry:
        providers = register_seed_llm_setup(registry, capabilities=["structured_output"])
        openai, anthropic = providers["openai"], providers["anthropic"]
        if not await registry.wait_ready(timeout=5.0):
            raise SystemExit("providers did not become ready")
        start = trio.current_time()

        def say(text: str) -> None:
            print(f"  t={trio.current_time() - start:5.1f}s  {text}")

        print("Seed set-up: group 0 openai > anthropic (fallback), group 1 local1/local2")
        print("(round robin), group 2 mock. One request a second, on virtual time.\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_log_transitions, registry, start)
            for i in range(requests):
                if i == fail_at:
                    openai.failing = True
                    say("** openai goes down **")
                if i == both_at:
                    anthropic.failing = True
                    say("** anthropic goes down too **")
                if i == recover_at:
                    openai.failing = anthropic.failing = False
                    say("** openai and anthropic recover **")
                tried: list[str] = []
                try:
                    answer = await registry.call(
                        "ActionSelectionPDMA",
                        "llm",
                        _ask,
                        i,
                        tried,
                        required_capabilities=["structured_output"],
                    )
                    served = answer.split(":")[0]
                except NoServiceAvailable as error:
                    served = f"none ({error})"
                failed = f"  (after {', '.join(tried[:-1])} failed)" if len(tried) > 1 else ""
                say(f"request {i:2d} -> {served}{failed}")
                await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        print()
        print(registry.explain("ActionSelectionPDMA", "llm", ["structured_output"]))
