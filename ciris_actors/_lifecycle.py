"""The duck-typed provider lifecycle: which hooks a provider has, as the registry sees
them. Pure: used by the actors that run the hooks, by the registry to decide a new
provider's first status, and by ``testing.check_provider``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["has_lifecycle", "is_async_context_manager", "lifecycle_method", "needs_supervision"]


def lifecycle_method(instance: object, name: str) -> Callable[[], Awaitable[Any]] | None:
    """Return ``instance.<name>`` if it is a coroutine function, else ``None``.

    Only coroutine functions count, so an unrelated synchronous ``start`` (a thread's, a
    mock's) is never mistaken for a lifecycle hook.
    """
    method = getattr(instance, name, None)
    if method is not None and inspect.iscoroutinefunction(method):
        return method  # type: ignore[no-any-return]
    return None


def is_async_context_manager(instance: object) -> bool:
    """Whether *instance*'s class defines ``__aenter__`` and ``__aexit__``."""
    cls = type(instance)
    return hasattr(cls, "__aenter__") and hasattr(cls, "__aexit__")


def has_lifecycle(instance: object) -> bool:
    """Whether *instance* must be started before it is routable."""
    return is_async_context_manager(instance) or lifecycle_method(instance, "start") is not None


def needs_supervision(instance: object) -> bool:
    """Whether *instance* has anything for a provider actor to start, run or close."""
    return is_async_context_manager(instance) or any(
        lifecycle_method(instance, hook) is not None for hook in ("start", "run", "aclose")
    )
