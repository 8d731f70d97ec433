"""A conformance check users run on their own providers."""

from __future__ import annotations

import inspect

import trio

from .._actors.provider_actor import has_lifecycle, lifecycle_method
from ..registry import open_registry

__all__ = ["check_provider"]


async def check_provider(
    provider: object,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - a budget per step, not one deadline
) -> list[str]:
    """Put *provider* through the lifecycle a registry will, and list what goes wrong.

    Checks that lifecycle hooks are coroutine functions, that it becomes routable within
    *timeout* (``start`` returns, the first ``is_healthy`` returns ``True``), that
    ``is_healthy`` returns a bool, and that unregistering closes it within *timeout*.

    Returns:
      One sentence per problem; empty when the provider conforms.
    """
    problems: list[str] = []
    for hook in ("start", "run", "aclose", "is_healthy"):
        method = getattr(provider, hook, None)
        if method is not None and callable(method) and not inspect.iscoroutinefunction(method):
            problems.append(f"{hook}() is not a coroutine function, so the registry will ignore it")
    checker = lifecycle_method(provider, "is_healthy")
    if checker is not None:
        with trio.move_on_after(timeout) as scope:
            try:
                result = await checker()
            except Exception as exc:
                problems.append(f"is_healthy() raised {type(exc).__name__}: {exc}")
            else:
                if not isinstance(result, bool):
                    problems.append(f"is_healthy() returned {result!r}, not a bool")
        if scope.cancelled_caught:
            problems.append(f"is_healthy() did not return within {timeout:g}s")
    async with open_registry(health_check_interval=None, close_timeout=timeout) as registry:
        name = registry.register("*", "conformance", provider, name="provider-under-check")
        if not await registry.wait_ready(timeout, ["conformance"]):
            info = registry.get_provider_info()["global_services"]["conformance"][0]
            what = "start() returning and a passing first health check"
            if not has_lifecycle(provider):
                what = "a passing first health check"
            problems.append(
                f"not routable within {timeout:g}s (waiting for {what}; actor"
                f" {info['actor_status']}, health {info['health_reason']!r},"
                f" last error {info['last_error']!r})"
            )
        registry.unregister(name)
    return problems
