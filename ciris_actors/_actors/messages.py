"""Messages to a provider's breaker actor.

The registry applies every change to the breaker synchronously, before its method
returns; these messages only tell the actor to look again (re-arm its timer, run a
health check now, or stop). So a message that cannot be queued because the mailbox is
full loses nothing: the queued ones already make the actor look.
"""

from __future__ import annotations

import enum

__all__ = ["BreakerMessage"]


class BreakerMessage(enum.Enum):
    """What the breaker actor is asked to do."""

    #: The breaker was reset; re-arm timers.
    RESET = "reset"
    #: The breaker was forced open; re-arm the open timer.
    FORCE_OPEN = "force_open"
    #: The breaker's configuration changed; re-arm timers with the new durations.
    CONFIG_CHANGED = "config_changed"
    #: A probe permit was handed out by ``get_service``; arm its deadline.
    PERMIT_TAKEN = "permit_taken"
    #: The provider (re)started: run its first health check now.
    CHECK_NOW = "check_now"
    #: The provider is going away.
    STOP = "stop"
