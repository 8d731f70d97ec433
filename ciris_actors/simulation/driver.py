"""The ``events`` engine's driver: a heap of the simulation's own timed events, run on
trio's ``MockClock`` interleaved with everything trio has scheduled.

One trio task runs the heap. Once every other task is blocked, it handles its own due
events one after another, moving the clock itself and never yielding, for as long as
its next event comes before trio's next deadline and none of its steps has woken a
task. Then it gives control back to trio until trio is idle again. So a request costs a
few heap operations and plain function calls instead of a task, cancel scopes and
several passes of trio's run loop, while the actors' timers, health checks, crashes and
restarts still run as tasks, at their own instants.

Same-instant order: trio's work due at an instant (actor timers, health checks, tasks
woken by them) runs before the driver's events at that instant; the driver's events at
one instant run by rank, then in the order they were scheduled; a task one of them wakes
runs before the next one.

Only public trio API is used: ``MockClock.jump``, ``current_statistics``,
``wait_all_tasks_blocked`` and an :class:`trio.abc.Instrument` that notices wake-ups.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

__all__ = ["EventDriver"]

#: Own events handled between two checkpoints at most (cancellation, Ctrl-C).
_STRETCH = 1024


class _WakeWatch(trio.abc.Instrument):
    """Notices when any task is scheduled to run (a step of the driver woke one)."""

    __slots__ = ("woke",)

    def __init__(self) -> None:
        self.woke = False

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.woke = True


class EventDriver:
    """A heap of timed callbacks, run on the current trio run's ``MockClock``.

    Args:
      clock: the run's clock: a ``trio.testing.MockClock`` with ``rate`` 0.

    Raises:
      RuntimeError: *clock* is not such a clock.
    """

    def __init__(self, clock: trio.abc.Clock) -> None:
        if not isinstance(clock, trio.testing.MockClock) or clock.rate != 0:
            raise RuntimeError(
                "the events engine needs a trio.testing.MockClock with rate 0 as the run's"
                f" clock, not {clock!r}"
            )
        self._clock = clock
        self._heap: list[tuple[float, int, int, Callable[[Any], None], Any]] = []
        self._order = itertools.count()
        #: The clock's time, as of the event being handled (read it instead of the clock).
        self.now = clock.current_time()

    def __len__(self) -> int:
        """Events scheduled and not yet handled."""
        return len(self._heap)

    def schedule(
        self,
        at: float,
        action: Callable[[Any], None],
        argument: Any = None,
        *,
        rank: int = 0,
    ) -> None:
        """Call ``action(argument)`` at clock time *at* (now, if *at* has passed).

        Events at one instant run by *rank* (lower first), then in the order they were
        scheduled.
        """
        heapq.heappush(self._heap, (at, rank, next(self._order), action, argument))

    async def run(self) -> None:
        """Handle every event, including those scheduled while running, in time order;
        return when none is left (trio's timers past the last one are left to trio)."""
        heap = self._heap
        clock = self._clock
        watch = _WakeWatch()
        trio.lowlevel.add_instrument(watch)
        try:
            while heap:
                # Let trio finish everything due now: tasks woken, deadlines expired.
                await trio.testing.wait_all_tasks_blocked()
                self.now = now = clock.current_time()
                # Seconds from *now* to trio's next deadline. Comparing offsets from one
                # *now* keeps a tie a tie, whatever the rounding of the clock's jumps.
                until = trio.lowlevel.current_statistics().seconds_to_next_deadline
                ahead = heap[0][0] - now
                if ahead > until:
                    # trio has something due first: jump to it as MockClock's autojump
                    # would, and let it run.
                    clock.jump(max(until, 0.0))
                    continue
                if ahead == until:
                    # Due together, or a rounding error apart: move the clock to our
                    # event and ask trio again. If its deadline is there too, it expires
                    # and its work runs first; if it was an ulp later, our event runs
                    # first, at its own time.
                    self._advance(heap[0][0])
                    continue
                watch.woke = False
                for _ in range(_STRETCH):
                    at, _rank, _order, action, argument = heapq.heappop(heap)
                    self._advance(at)
                    action(argument)
                    if watch.woke or not heap or heap[0][0] - now >= until:
                        break
                else:
                    # A long stretch with nothing else due: let a cancellation in.
                    await trio.lowlevel.checkpoint()
        finally:
            trio.lowlevel.remove_instrument(watch)

    def _advance(self, at: float) -> None:
        """Move the clock to exactly *at* (never past it).

        With ``rate`` 0 a ``MockClock`` reads the float sum of its jumps, so :attr:`now`
        follows it without reading it, and a jump is chosen so that the sum lands on *at*:
        ``now + (at - now)`` can round past *at*, so the gap is shortened until it does not
        (and the rest is jumped again).
        """
        clock = self._clock
        current = self.now
        while current < at:
            gap = at - current
            while current + gap > at:
                gap = math.nextafter(gap, 0.0)
            clock.jump(gap)
            current += gap
        self.now = current

    @property
    def next_time(self) -> float:
        """Clock time of the next event (``math.inf``: none)."""
        return self._heap[0][0] if self._heap else math.inf
