"""The restart policy of the supervisor: OTP-style intensity with exponential back-off.

Pure: the decision "restart after how long, or give up" is a function of the crash
times, so it is tested on its own; the supervisor only sleeps and acts on it.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from ._validators import attrs_check, count, seconds

__all__ = ["RestartPolicy", "RestartTracker"]


def _maximum(instance: RestartPolicy, attribute: attrs.Attribute[Any], value: float) -> None:
    seconds(value, attribute.name, inclusive=True)
    if value < instance.initial:
        raise ValueError(
            f"{attribute.name}: must be >= initial ({instance.initial}), got {value!r}"
        )


def _jitter(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    seconds(value, attribute.name, inclusive=True)
    if value > 1.0:
        raise ValueError(f"{attribute.name}: must be between 0 and 1, got {value!r}")


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name}: expected a bool, got {type(value).__name__}")


@attrs.frozen
class RestartPolicy:
    """When and how often the supervisor restarts a crashed provider.

    A provider may crash and be restarted ``max_restarts`` times within any ``within``
    seconds; one more crash inside that window makes it FAILED (routed around, and an
    :class:`ActorFailed` event), or, with ``escalate=True``, makes the registry raise.
    The n-th restart inside the window waits ``initial * 2**(n-1)`` seconds scaled by a
    random factor in ``[1 - jitter, 1 + jitter]``, and never more than ``maximum``.

    Raises:
      ValueError, TypeError: for a negative, NaN or mistyped field (the message names it).
    """

    max_restarts: int = attrs.field(default=3, validator=attrs_check(count, minimum=0))
    within: float = attrs.field(default=5.0, validator=attrs_check(seconds))
    initial: float = attrs.field(default=0.1, validator=attrs_check(seconds, inclusive=True))
    maximum: float = attrs.field(default=30.0, validator=_maximum)
    jitter: float = attrs.field(default=0.1, validator=_jitter)
    escalate: bool = attrs.field(default=False, validator=_flag)

    def delay(self, restart_number: int, rng: random.Random) -> float:
        """Back-off before the *restart_number*-th restart (1-based) in the window."""
        # 2.0**1023 is the largest power of two a float holds (2.0**1024 raises
        # OverflowError); past it the delay is at its cap, however large that is.
        base = self.initial * 2.0 ** min(restart_number - 1, 1023)
        if self.jitter:
            base *= 1.0 + self.jitter * rng.uniform(-1.0, 1.0)
        return min(self.maximum, max(0.0, base))


@attrs.define(slots=True)
class RestartTracker:
    """The crash history of one provider against its :class:`RestartPolicy`."""

    policy: RestartPolicy
    #: Times of the restarts granted in the current window (at most max_restarts).
    _window: list[float] = attrs.field(factory=list, init=False)
    #: Restarts granted over the provider's lifetime.
    restarts: int = attrs.field(default=0, init=False)

    def on_crash(self, now: float, rng: random.Random) -> float | None:
        """Decide what a crash at *now* leads to.

        Returns:
          The delay before restarting, or ``None`` when the crash exceeds the intensity
          (``max_restarts`` restarts already granted in the last ``within`` seconds).
        """
        window = self._window
        window[:] = [t for t in window if t > now - self.policy.within]
        if len(window) >= self.policy.max_restarts:
            return None
        window.append(now)
        self.restarts += 1
        return self.policy.delay(len(window), rng)
