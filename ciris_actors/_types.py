"""The closed sets of the public contract (priorities, strategies, breaker states)
and the coercions that turn user input into them with errors that name the field.

Pure: imports neither trio nor the actors.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ._validators import seconds

__all__ = [
    "GLOBAL",
    "ActorStatus",
    "CircuitState",
    "HealthCheckProtocol",
    "Priority",
    "SelectionStrategy",
]

#: The handler name of global providers: they serve every handler.
GLOBAL = "*"


class Priority(enum.IntEnum):
    """Priority level of a provider inside its priority group (lower is tried first)."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3
    FALLBACK = 9


class SelectionStrategy(enum.Enum):
    """How a priority group picks among its available providers."""

    #: The first available provider in priority order, every time.
    FALLBACK = "fallback"
    #: Rotate through the group's available providers.
    ROUND_ROBIN = "round_robin"
    #: Rotate in proportion to each provider's ``weight`` (a smooth schedule: each
    #: provider's turns evenly spaced; deterministic).
    WEIGHTED = "weighted"
    #: The one with fewer leases and calls in flight, of two picked at random.
    LEAST_OUTSTANDING = "least_outstanding"
    #: The one with the lower peak-sensitive average latency (times its load), of two
    #: picked at random; a provider not measured yet gets its chance first.
    LATENCY = "latency"


class CircuitState(enum.Enum):
    """State of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class ActorStatus(enum.Enum):
    """Lifecycle status of a provider's actor, as routing sees it."""

    #: ``start()`` (or ``__aenter__``) is running; not routable yet.
    STARTING = "starting"
    #: Started (or nothing to start): routable if its health allows.
    RUNNING = "running"
    #: Crashed; waiting out the restart back-off, then starting again.
    RESTARTING = "restarting"
    #: Exceeded its restart intensity: routed around for good.
    FAILED = "failed"
    #: Unregistered, or the registry closed.
    STOPPED = "stopped"


@runtime_checkable
class HealthCheckProtocol(Protocol):
    """A provider that can say whether it is healthy. Optional on providers."""

    async def is_healthy(self) -> bool:
        """Return whether the provider can serve requests now."""
        ...


def coerce_priority(value: object, field: str = "priority") -> Priority:
    """Return *value* as a :class:`Priority`; names are accepted case-insensitively.

    Raises:
      ValueError: if *value* names no priority.
      TypeError: if *value* is neither a priority, an int nor a string.
    """
    if isinstance(value, Priority):
        return value
    if isinstance(value, str):
        try:
            return Priority[value.strip().upper()]
        except KeyError:
            names = ", ".join(p.name for p in Priority)
            raise ValueError(
                f"{field}: unknown priority {value!r} (expected one of {names})"
            ) from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return Priority(value)
        except ValueError:
            values = ", ".join(str(p.value) for p in Priority)
            raise ValueError(f"{field}: {value!r} is not a priority value ({values})") from None
    raise TypeError(f"{field}: expected a Priority or its name, got {type(value).__name__}")


def coerce_strategy(value: object, field: str = "strategy") -> SelectionStrategy:
    """Return *value* as a :class:`SelectionStrategy`; names and values are accepted.

    Raises:
      ValueError: if *value* names no strategy.
      TypeError: if *value* is neither a strategy nor a string.
    """
    if isinstance(value, SelectionStrategy):
        return value
    if isinstance(value, str):
        key = value.strip()
        for strategy in SelectionStrategy:
            if key.lower() == strategy.value or key.upper() == strategy.name:
                return strategy
        names = ", ".join(s.value for s in SelectionStrategy)
        raise ValueError(f"{field}: unknown strategy {value!r} (expected one of {names})")
    raise TypeError(
        f"{field}: expected a SelectionStrategy or its name, got {type(value).__name__}"
    )


def coerce_group(value: object, field: str = "priority_group") -> int:
    """Return *value* as a priority group: a non-negative int.

    Raises:
      TypeError: if *value* is not an int.
      ValueError: if *value* is negative.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field}: expected a non-negative int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{field}: must be >= 0, got {value}")
    return value


def coerce_capabilities(value: object, field: str = "capabilities") -> frozenset[str]:
    """Return *value* (an iterable of strings, or None) as a frozenset.

    A bare string is refused: ``"structured_output"`` would otherwise become a set of letters.

    Raises:
      TypeError: if *value* is a string, not iterable, or holds a non-string.
    """
    if value is None:
        return frozenset()
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{field}: expected an iterable of strings, got a bare string {value!r}")
    if not isinstance(value, Iterable):
        raise TypeError(f"{field}: expected an iterable of strings, got {type(value).__name__}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{field}: every capability must be a str, got {item!r}")
    return frozenset(items)


def check_duration(value: object, field: str, *, allow_none: bool = False) -> float | None:
    """Return *value* as a finite, positive number of seconds.

    Raises:
      TypeError: if *value* is not a number.
      ValueError: if *value* is NaN, infinite (or an int too large for a float), zero
        or negative.
    """
    if value is None and allow_none:
        return None
    return seconds(value, field)
