"""The ``ciris-actors`` command.

``ciris-actors demo`` registers the seed design's three-group LLM set-up, fails the
primary, and prints which provider each request went to, on trio's virtual clock (so a
minute of traffic takes a moment).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio
import trio.testing

from . import (
    BreakerTransition,
    CircuitBreakerConfig,
    NoServiceAvailable,
    Priority,
    Registry,
    SelectionStrategy,
    open_registry,
)
from .testing import FakeProvider

__all__ = ["main"]


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
    openai, anthropic = FakeProvider("OpenAI"), FakeProvider("Anthropic")
    local1, local2 = FakeProvider("LocalLLM1"), FakeProvider("LocalLLM2")
    mock = FakeProvider("MockLLM")
    async with open_registry(required_services=["llm"], default_breaker=breaker) as registry:
        for provider, priority, group, strategy in [
            (openai, Priority.CRITICAL, 0, SelectionStrategy.FALLBACK),
            (anthropic, Priority.HIGH, 0, SelectionStrategy.FALLBACK),
            (local1, Priority.NORMAL, 1, SelectionStrategy.ROUND_ROBIN),
            (local2, Priority.NORMAL, 1, SelectionStrategy.ROUND_ROBIN),
            (mock, Priority.FALLBACK, 2, SelectionStrategy.FALLBACK),
        ]:
            registry.register(
                "ActionSelectionPDMA",
                "llm",
                provider,
                priority,
                capabilities=["structured_output"],
                priority_group=group,
                strategy=strategy,
                name=provider.name,
            )
        if not await registry.wait_ready(timeout=5.0):
            raise SystemExit("providers did not become ready")
        start = trio.current_time()

        def say(text: str) -> None:
            print(f"  t={trio.current_time() - start:5.1f}s  {text}")

        print("Seed set-up: group 0 OpenAI > Anthropic (fallback), group 1 LocalLLM1/2")
        print("(round robin), group 2 MockLLM. One request a second, on virtual time.\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_log_transitions, registry, start)
            for i in range(requests):
                if i == fail_at:
                    openai.failing = True
                    say("** OpenAI goes down **")
                if i == both_at:
                    anthropic.failing = True
                    say("** Anthropic goes down too **")
                if i == recover_at:
                    openai.failing = anthropic.failing = False
                    say("** OpenAI and Anthropic recover **")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ciris-actors`` command."""
    parser = argparse.ArgumentParser(
        prog="ciris-actors", description="Trio-native provider supervision and routing."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="fail the primary LLM of the seed set-up and watch requests fail over"
    )
    demo.add_argument("--requests", type=int, default=40, help="requests to send (default 40)")
    demo.add_argument("--fail-at", type=int, default=5, help="request at which OpenAI fails")
    demo.add_argument(
        "--both-at", type=int, default=15, help="request at which Anthropic fails too"
    )
    demo.add_argument("--recover-at", type=int, default=25, help="request at which both recover")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    trio.run(
        _demo,
        args.requests,
        args.fail_at,
        args.both_at,
        args.recover_at,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
