"""A conformance check users run on their own providers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._lifecycle import has_lifecycle, lifecycle_method
from ..events import ProviderClosed
from ..registry import open_registry

__all__ = ["check_provider"]


async def check_provider(
    provider: object,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - a budget per step, not one deadline
) -> list[str]:
    """Put *provider* through the lifecycle a registry will, and list what goes wrong.

    Checks that lifecycle hooks are coroutine functions; that it becomes routable within
    *timeout* (``start`` returns, the first ``is_healthy`` returns ``True``); that
    ``is_healthy``, called as the registry calls it (after ``start``), returns a bool;
    and that unregistering closes it within *timeout* without an error.

    Returns:
      One sentence per problem; empty when the provider conforms.
    """
    problems: list[str] = []
    for hook in ("start", "run", "aclose", "is_healthy"):
        method = getattr(provider, hook, None)
        if method is not None and callable(method) and not inspect.iscoroutinefunction(method):
            problems.append(f"{hook}() is not a coroutine function, so the registry will ignore it")
    async with (
        open_registry(health_check_interval=None, close_timeout=timeout) as registry,
        registry.events(types=[ProviderClosed]) as closings,
    ):
        name = registry.register("*", "conformance", provider, name="provider-under-check")
        if not await registry.wait_ready(timeout, ["conformance"]):
            what = "start() returning and a passing first health check"
            if not has_lifecycle(provider):
                what = "a passing first health check"
            view = registry.view(name)
            problems.append(
                f"not routable within {timeout:g}s (waiting for {what}; actor"
                f" {view.actor_status.value}, health {view.health_reason!r},"
                f" last error {view.last_error!r})"
            )
        else:
            checker = lifecycle_method(provider, "is_healthy")
            if checker is not None:
                with trio.move_on_after(timeout) as scope:
                    problems += await _check_health_result(checker)
                if scope.cancelled_caught:
                    problems.append(f"is_healthy() did not return within {timeout:g}s")
        registry.unregister(name)
        closed: ProviderClosed | None = None
        # The registry cuts a close short at close_timeout and says so in the event;
        # twice that is left for one that ignores even that.
        with trio.move_on_after(2 * timeout):
            async for event in closings:
                assert isinstance(event, ProviderClosed)
                closed = event
                break
        if closed is None:
            problems.append(f"not closed within {timeout:g}s of being unregistered")
        elif closed.error:
            problems.append(f"closing failed: {closed.error}")
    return problems


async def _check_health_result(checker: Callable[[], Awaitable[Any]]) -> list[str]:
    try:
        result = await checker()
    except Exception as exc:
        return [f"is_healthy() raised {type(exc).__name__}: {exc}"]
    if not isinstance(result, bool):
        return [f"is_healthy() returned {result!r}, not a bool"]
    return []
