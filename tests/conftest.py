"""Shared fixtures: a registry on virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio.testing

from ciris_actors import CircuitBreakerConfig, Registry, open_registry

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
