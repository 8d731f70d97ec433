"""The breaker actor's mailbox and the messages it carries.

The registry applies every change to the breaker synchronously, before its method
returns; these messages only tell the actor to look again (re-arm its timer, run a
health check now, or stop). So messages of one kind coalesce: posting RESET twice before
the actor wakes is the same as posting it once, and the mailbox is a set of flags rather
than a queue. That keeps it allocation-free, which matters at thousands of providers.
"""

from __future__ import annotations

import enum

import trio

__all__ = ["BreakerMessage", "Mailbox"]


class BreakerMessage(enum.Flag):
    """What the breaker actor is asked to do (combinable: the mailbox coalesces)."""

    NONE = 0
    #: The breaker was reset; re-arm timers.
    RESET = enum.auto()
    #: The breaker was forced open; re-arm the open timer.
    FORCE_OPEN = enum.auto()
    #: The breaker opened (an outcome recorded on the hot path); arm the open timer.
    OPENED = enum.auto()
    #: The breaker's configuration changed; look again (deadlines already set stand).
    CONFIG_CHANGED = enum.auto()
    #: A probe permit was handed out by ``get_service``; arm its deadline.
    PERMIT_TAKEN = enum.auto()
    #: The provider (re)started: run its first health check now.
    CHECK_NOW = enum.auto()
    #: A health check has finished (from the task that ran it): schedule the next one.
    CHECKED = enum.auto()
    #: The provider is going away.
    STOP = enum.auto()


class Mailbox:
    """A single-reader mailbox of coalescing :class:`BreakerMessage` flags.

    :meth:`post` is synchronous and never blocks or fails; :meth:`receive` waits until
    something was posted and returns everything posted since the last receive.
    """

    __slots__ = ("_pending", "_reader")

    def __init__(self) -> None:
        self._pending = BreakerMessage.NONE
        self._reader: trio.lowlevel.Task | None = None

    def post(self, message: BreakerMessage) -> None:
        """Add *message* to the pending set and wake the reader if it is waiting."""
        self._pending |= message
        reader, self._reader = self._reader, None
        if reader is not None:
            trio.lowlevel.reschedule(reader)

    async def receive(self) -> BreakerMessage:
        """Return every message posted since the last call, waiting for one if none is.

        Cancellable: a cancelled wait loses nothing (posted messages stay pending).
        """
        if not self._pending:
            if self._reader is not None:
                raise trio.BusyResourceError("a mailbox has one reader")
            self._reader = trio.lowlevel.current_task()

            def abort(_: object) -> trio.lowlevel.Abort:
                self._reader = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        pending, self._pending = self._pending, BreakerMessage.NONE
        return pending
