"""The seed design's worked example, ready to register: for demos and tests."""

from __future__ import annotations

from collections.abc import Iterable

from .._types import Priority, SelectionStrategy
from ..registry import Registry
from ._fake import FakeProvider

__all__ = ["register_seed_llm_setup"]

#: (name, priority, group, strategy) of the seed's three-group LLM set-up.
_SEED_TIERS = (
    ("openai", Priority.CRITICAL, 0, SelectionStrategy.FALLBACK),
    ("anthropic", Priority.HIGH, 0, SelectionStrategy.FALLBACK),
    ("local1", Priority.NORMAL, 1, SelectionStrategy.ROUND_ROBIN),
    ("local2", Priority.NORMAL, 1, SelectionStrategy.ROUND_ROBIN),
    ("mock", Priority.FALLBACK, 2, SelectionStrategy.FALLBACK),
)


def register_seed_llm_setup(
    registry: Registry,
    handler: str = "ActionSelectionPDMA",
    capabilities: Iterable[str] = (),
) -> dict[str, FakeProvider]:
    """Register the seed design's LLM set-up with fake providers.

    Group 0: ``openai`` (CRITICAL) then ``anthropic`` (HIGH), fallback; group 1:
    ``local1`` and ``local2``, round robin; group 2: ``mock`` (FALLBACK).

    Args:
      registry: where to register them.
      handler: the handler they serve (``"*"`` for global providers).
      capabilities: the capabilities every one of them offers.

    Returns:
      The providers by name (also their registered names), to fail and heal in a test.
    """
    caps = tuple(capabilities)
    providers = {}
    for name, priority, group, strategy in _SEED_TIERS:
        provider = FakeProvider(name)
        registry.register(
            handler,
            "llm",
            provider,
            priority,
            capabilities=caps,
            priority_group=group,
            strategy=strategy,
            name=name,
        )
        providers[name] = provider
    return providers
