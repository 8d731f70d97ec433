"""A pure circuit breaker: a state machine whose clock is an argument.

It owns no timers and does no I/O, so it is usable on its own, from trio, asyncio or
threads, and is what the property-based tests drive directly. In the registry, the
breaker actor owns its timers and every mutation happens between two awaits.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import attrs

from ._errors import CircuitBreakerError
from ._types import CircuitState, check_duration
from ._validators import attrs_check, count, number, seconds
from .outcomes import ErrorClass, ErrorKind

__all__ = ["NO_PERMIT", "CircuitBreaker", "CircuitBreakerConfig", "TransitionCallback"]

#: Pass as ``generation`` to record the outcome of a call that holds no probe permit
#: (so none is returned). Generations start at 0, so it never matches one.
NO_PERMIT = -1

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

#: ``callback(breaker, old, new, reason, now)``, called after every state change.
TransitionCallback = Callable[["CircuitBreaker", CircuitState, CircuitState, str, float], None]


_count = attrs_check(count)
_positive = attrs_check(seconds)
_backoff = attrs_check(seconds, minimum=1.0, inclusive=True)


def _rate(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    share = number(value, attribute.name)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"{attribute.name}: must be a share in (0, 1], got {value!r}")


def _max_recovery(
    instance: CircuitBreakerConfig, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is None:
        return
    seconds(value, attribute.name)
    if value < instance.recovery_timeout:
        raise ValueError(
            f"{attribute.name}: must be >= recovery_timeout ({instance.recovery_timeout}),"
            f" got {value!r}"
        )


@attrs.frozen
class CircuitBreakerConfig:
    """How a circuit breaker counts and how long it stays open.

    Attributes:
      failure_threshold: consecutive failures in CLOSED that open the breaker.
      recovery_timeout: seconds OPEN lasts after the failure that opened it.
      success_threshold: successes in HALF_OPEN that close it.
      timeout_duration: deadline, in seconds, for a leased call, a health check and an
        outstanding half-open probe permit.
      half_open_max_calls: probe permits HALF_OPEN hands out at once (default:
        ``success_threshold``).
      recovery_backoff: multiplier applied to the open duration each time the breaker
        re-opens from HALF_OPEN without having closed (1.0: no back-off).
      max_recovery_timeout: cap on the backed-off open duration (``None``: no cap).
      failure_rate_threshold: also open a CLOSED breaker when, over the last ``window``
        seconds, at least ``minimum_calls`` outcomes were recorded and at least this share
        of them were failures (``None``: only the consecutive count trips it).
      minimum_calls: outcomes in the window before the failure rate is judged.
      window: seconds of outcomes the failure rate looks back over (kept in ten buckets
        of ``window / 10``: an outcome leaves the count between 0.9 and 1.0 ``window``
        after it was recorded).

    Raises:
      ValueError: a threshold below 1, a duration that is not > 0, NaN or infinite, a
        back-off below 1.0, a cap below ``recovery_timeout``, or a failure rate outside
        (0, 1]; the message names the field.
      TypeError: a value of the wrong type.
    """

    failure_threshold: int = attrs.field(default=5, validator=_count)
    recovery_timeout: float = attrs.field(default=60.0, validator=_positive)
    success_threshold: int = attrs.field(default=3, validator=_count)
    timeout_duration: float = attrs.field(default=30.0, validator=_positive)
    half_open_max_calls: int = attrs.field(
        default=attrs.Factory(lambda self: self.success_threshold, takes_self=True),
        validator=_count,
    )
    recovery_backoff: float = attrs.field(default=1.0, validator=_backoff)
    max_recovery_timeout: float | None = attrs.field(default=None, validator=_max_recovery)
    failure_rate_threshold: float | None = attrs.field(default=None, validator=_rate)
    minimum_calls: int = attrs.field(default=10, validator=_count)
    window: float = attrs.field(default=60.0, validator=_positive)


#: Buckets the failure-rate window is kept in: its memory is fixed, whatever the traffic.
RATE_BUCKETS = 10


@attrs.define(slots=True, eq=False)
class CircuitBreaker:
    """A circuit breaker whose every method takes the current time as an argument.

    CLOSED opens after ``failure_threshold`` consecutive failures (a success resets the
    count). OPEN admits nothing until ``recovery_timeout`` after the failure that opened it;
    the first admission after that (or :meth:`advance`) moves it to HALF_OPEN. HALF_OPEN
    hands out at most ``half_open_max_calls`` probe permits, closes after
    ``success_threshold`` successes and re-opens on any failure. Reading state never
    changes it.

    A typical guarded call::

        if not breaker.acquire(now()):
            raise ...                       # or breaker.check_and_raise(now())
        generation = breaker.generation
        try:
            result = do_call()
        except Exception:
            breaker.record_failure(now(), generation=generation)
            raise
        breaker.record_success(now(), generation=generation)

    ``acquire`` takes a probe permit only in HALF_OPEN; recording an outcome returns it,
    and :meth:`release` returns one for a call that ended with no outcome. Passing the
    ``generation`` read at admission makes a late outcome from an earlier state period
    count as an outcome without returning a permit that no longer exists; passing
    :data:`NO_PERMIT` records an outcome for a call that never held one.

    A breaker is not safe to share between threads unless made with
    ``thread_safe=True``: then every method holds the breaker's lock, so two threads
    never both take the last probe permit, and a transition (and its callback) happens
    once. Without it a breaker takes no lock at all; the registry's breakers, used from
    one trio thread, are made that way.

    Args:
      name: the breaker's name (in errors and stats).
      config: its configuration.
      on_transition: called as ``on_transition(breaker, old, new, reason, now)`` after
        every state change (with ``thread_safe=True``, while the breaker's lock is held:
        it may read the breaker, and must not wait on another thread that uses it).
      thread_safe: lock every method, to share the breaker between threads.
    """

    name: str
    config: CircuitBreakerConfig = attrs.field(factory=CircuitBreakerConfig)
    on_transition: TransitionCallback | None = attrs.field(default=None, repr=False)
    thread_safe: bool = attrs.field(default=False, kw_only=True)

    _state: CircuitState = attrs.field(default=_CLOSED, init=False)
    _failures: int = attrs.field(default=0, init=False)
    _successes: int = attrs.field(default=0, init=False)
    _probes: int = attrs.field(default=0, init=False)
    _open_timeout: float = attrs.field(default=0.0, init=False)
    #: When the current OPEN period began; ``None`` in any other state.
    _opened_at: float | None = attrs.field(default=None, init=False)
    _next_attempt: float = attrs.field(default=0.0, init=False)
    _forced: bool = attrs.field(default=False, init=False)
    _last_time: float = attrs.field(default=0.0, init=False)
    _open_time: float = attrs.field(default=0.0, init=False)
    #: Incremented at every state change; outcomes carry the one read at admission.
    generation: int = attrs.field(default=0, init=False)
    total_successes: int = attrs.field(default=0, init=False)
    total_failures: int = attrs.field(default=0, init=False)
    total_rejections: int = attrs.field(default=0, init=False)
    transitions: int = attrs.field(default=0, init=False)
    last_failure_time: float | None = attrs.field(default=None, init=False)
    #: Why the breaker is disabled (OPEN with no deadline), or ``None``.
    _disabled: str | None = attrs.field(default=None, init=False)
    #: The failure-rate window, only while ``failure_rate_threshold`` is set and the
    #: breaker is CLOSED: calls and failures of each bucket, interleaved.
    _rate_counts: list[int] | None = attrs.field(default=None, init=False, repr=False)
    #: The number of the newest bucket in ``_rate_counts`` (time // bucket width).
    _rate_last: int = attrs.field(default=0, init=False, repr=False)

    _lock: threading.RLock | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.config, CircuitBreakerConfig):
            raise TypeError(
                f"config: expected a CircuitBreakerConfig, got {type(self.config).__name__}"
            )
        if not isinstance(self.thread_safe, bool):
            raise TypeError(f"thread_safe: expected a bool, got {type(self.thread_safe).__name__}")
        self._open_timeout = self.config.recovery_timeout
        if self.thread_safe:
            # The locking twin of this class: same layout, every method under the lock.
            # Swapping the class rather than testing a flag in each method keeps the
            # single-threaded breaker (the registry's) free of any locking cost.
            self._lock = threading.RLock()
            self.__class__ = ThreadSafeCircuitBreaker

    # -- reading (never changes anything) ----------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The stored state. An OPEN breaker whose deadline has passed still reads OPEN
        until it admits a call or :meth:`advance` is called."""
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted in CLOSED."""
        return self._failures

    @property
    def success_count(self) -> int:
        """Successes counted in the current HALF_OPEN period."""
        return self._successes

    @property
    def probes_in_flight(self) -> int:
        """Half-open probe permits handed out and not yet returned."""
        return self._probes

    @property
    def forced(self) -> bool:
        """Whether the breaker is held open by :meth:`force_open`."""
        return self._forced

    @property
    def disabled(self) -> str | None:
        """Why the breaker is disabled (see :meth:`disable`), or ``None``."""
        return self._disabled

    @property
    def next_attempt_time(self) -> float | None:
        """When an OPEN breaker will admit its first probe; ``None`` unless OPEN, or when
        it will not by itself (disabled)."""
        if self._state is not _OPEN or self._disabled is not None:
            return None
        return self._next_attempt

    def failure_rate(self, now: float) -> tuple[int, int] | None:
        """``(failures, calls)`` in the failure-rate window at *now*, or ``None`` when
        the breaker has no ``failure_rate_threshold`` or is not CLOSED."""
        if self.config.failure_rate_threshold is None or self._state is not _CLOSED:
            return None
        counts = self._rate_counts
        if counts is None:
            return 0, 0
        width = self.config.window / RATE_BUCKETS
        newest = math.floor(now / width)
        calls = failures = 0
        for bucket in range(max(self._rate_last, newest) - RATE_BUCKETS + 1, self._rate_last + 1):
            slot = 2 * (bucket % RATE_BUCKETS)
            calls += counts[slot]
            failures += counts[slot + 1]
        return failures, calls

    def is_available(self, now: float) -> bool:
        """Return whether a call at *now* would be admitted, without admitting it."""
        state = self._state
        if state is _CLOSED:
            return True
        if state is _OPEN:
            return now >= self._next_attempt
        return self._probes < self.config.half_open_max_calls

    def check_and_raise(self, now: float) -> None:
        """Raise :class:`CircuitBreakerError` if a call at *now* would not be admitted."""
        if not self.is_available(now):
            raise CircuitBreakerError(
                self.name, self._state, self.next_attempt_time, self._disabled
            )

    def get_stats(self, now: float | None = None) -> dict[str, Any]:
        """Return a JSON-ready snapshot of the breaker.

        Args:
          now: the current time; when given, ``time_in_open`` includes the current open
            period. Reading stats never changes the breaker.
        """
        open_time = self._open_time
        opened_at = self._opened_at  # set exactly while OPEN
        if opened_at is not None and now is not None:
            open_time += max(0.0, now - opened_at)
        return {
            "name": self.name,
            "state": self._state.value,
            "failure_count": self._failures,
            "success_count": self._successes,
            "probes_in_flight": self._probes,
            "total_successes": self.total_successes,
            "total_failures": self.total_failures,
            "total_rejections": self.total_rejections,
            "transitions": self.transitions,
            "last_failure_time": self.last_failure_time,
            "opened_at": opened_at,
            "next_attempt_time": self.next_attempt_time,
            "current_recovery_timeout": self._open_timeout,
            "forced_open": self._forced,
            "time_in_open": open_time,
            "disabled": self._disabled,
        }

    # -- admission ----------------------------------------------------------------------

    def acquire(self, now: float) -> bool:
        """Admit a call at *now* or refuse it.

        In CLOSED this always admits. In OPEN it refuses until the deadline, then moves to
        HALF_OPEN. In HALF_OPEN it hands out a probe permit while fewer than
        ``half_open_max_calls`` are out. A refusal is counted in ``total_rejections``.
        """
        state = self._state
        if state is _CLOSED:
            return True
        if state is _OPEN:
            if now < self._next_attempt:
                self.total_rejections += 1
                return False
            self._to_half_open(now, "recovery timeout elapsed")
        if self._probes >= self.config.half_open_max_calls:
            self.total_rejections += 1
            return False
        self._probes += 1
        return True

    def release(self, generation: int | None = None) -> None:
        """Return a probe permit for a call that ended without an outcome.

        Args:
          generation: the :attr:`generation` read when the permit was taken; a permit from
            an earlier state period is already void and nothing is returned.
        """
        if self._probes and (generation is None or generation == self.generation):
            self._probes -= 1

    # -- outcomes -----------------------------------------------------------------------

    def record_success(self, now: float, generation: int | None = None) -> None:
        """Record a successful call at *now* (returning its probe permit in HALF_OPEN)."""
        self._last_time = now
        self.total_successes += 1
        state = self._state
        if state is _CLOSED:
            # Guard (guard.py) repeats this branch inline, for its fast path: keep them alike.
            self._failures = 0
            if self.config.failure_rate_threshold is not None:
                self._note_rate(now, failed=False)
        elif state is _HALF_OPEN:
            self.release(generation)
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._to_closed(now, f"{self._successes} successful probes")
        # In OPEN a success is the late result of a call admitted before it opened: it is
        # counted in the totals and changes nothing else.

    def record_failure(self, now: float, generation: int | None = None) -> None:
        """Record a failed call at *now* (returning its probe permit in HALF_OPEN)."""
        self._last_time = now
        self.total_failures += 1
        self.last_failure_time = now
        state = self._state
        if state is _CLOSED:
            self._failures += 1
            if self._failures >= self.config.failure_threshold:
                self._to_open(now, f"{self._failures} consecutive failures")
            elif self.config.failure_rate_threshold is not None:
                self._note_rate(now, failed=True)
        elif state is _HALF_OPEN:
            # No release(generation) here: re-opening voids every permit, this one's too.
            timeout = self._open_timeout * self.config.recovery_backoff
            cap = self.config.max_recovery_timeout
            self._open_timeout = timeout if cap is None else min(timeout, cap)
            self._to_open(now, "probe failed")
        # In OPEN the deadline stays where the opening failure put it (seed semantics).

    def record_rate_limited(
        self, now: float, generation: int | None = None, retry_after: float | None = None
    ) -> None:
        """Record a call refused for its rate at *now*: a failure that opens the breaker
        at once, until at least *retry_after* seconds from now (``None``: its current open
        duration). An OPEN breaker's deadline is only ever extended, never shortened.

        Raises:
          TypeError, ValueError: *retry_after* is not a finite number >= 0 (nothing is
            recorded then).
        """
        span = (
            self._open_timeout
            if retry_after is None
            else seconds(retry_after, "retry_after", inclusive=True)
        )
        self._last_time = now
        self.total_failures += 1
        self.last_failure_time = now
        until = now + span
        if self._state is _OPEN:
            if until > self._next_attempt:
                self._next_attempt = until
        else:
            self._to_open(now, f"rate limited for {span:g} s", span=span)

    def disable(self, now: float, reason: str) -> None:
        """Take the breaker out of service at *now*: OPEN with no deadline, refusing
        every call, until :meth:`reset` or :meth:`configure`. Counts as a failure.

        Raises:
          TypeError, ValueError: *reason* is not a non-empty string.
        """
        if not isinstance(reason, str):
            raise TypeError(f"reason: expected a string, got {type(reason).__name__}")
        if not reason.strip():
            raise ValueError("reason: must say why (got an empty string)")
        self._last_time = now
        self.total_failures += 1
        self.last_failure_time = now
        if self._disabled is not None:
            return
        if self._state is _OPEN:
            self._next_attempt = math.inf
            self._disabled = reason
        else:
            self._to_open(now, f"disabled: {reason}", span=math.inf)
            self._disabled = reason

    def record_error(
        self, now: float, error_class: ErrorClass, generation: int | None = None
    ) -> None:
        """Record a call that raised, as its :class:`~ciris_actors.outcomes.ErrorClass`
        says: a failure, a success, nothing (``ignore``, ``reroute``: the permit is
        returned), a rate limit, or a disable."""
        kind = error_class.kind
        if kind is ErrorKind.FAILURE:
            self.record_failure(now, generation)
        elif kind is ErrorKind.SUCCESS:
            self.record_success(now, generation)
        elif kind is ErrorKind.RATE_LIMITED:
            self.record_rate_limited(now, generation, error_class.retry_after)
        elif kind is ErrorKind.DISABLE:
            self.disable(now, error_class.reason)
        else:
            self.release(generation)

    def _note_rate(self, now: float, *, failed: bool) -> None:
        """Count an outcome in the failure-rate window (CLOSED only), and open the
        breaker if the window's failure share reached the threshold."""
        config = self.config
        width = config.window / RATE_BUCKETS
        bucket = math.floor(now / width)
        counts = self._rate_counts
        if counts is None:
            counts = self._rate_counts = [0] * (2 * RATE_BUCKETS)
            self._rate_last = bucket
        last = self._rate_last
        if bucket > last:
            for stale in range(max(last + 1, bucket - RATE_BUCKETS + 1), bucket + 1):
                slot = 2 * (stale % RATE_BUCKETS)
                counts[slot] = counts[slot + 1] = 0
            self._rate_last = bucket
        elif bucket <= last - RATE_BUCKETS:
            return  # older than the window: it no longer counts
        slot = 2 * (bucket % RATE_BUCKETS)
        counts[slot] += 1
        if failed:
            counts[slot + 1] += 1
        calls = sum(counts[0::2])
        if calls < config.minimum_calls:
            return
        failures = sum(counts[1::2])
        threshold = config.failure_rate_threshold
        assert threshold is not None
        if failures / calls >= threshold:
            self._to_open(now, f"failure rate {failures}/{calls} over the last {config.window:g} s")

    # -- time and control ---------------------------------------------------------------

    def advance(self, now: float) -> bool:
        """Apply the OPEN -> HALF_OPEN transition if its deadline has passed at *now*.

        Returns:
          Whether the state changed.
        """
        if self._state is _OPEN and now >= self._next_attempt:
            self._to_half_open(now, "recovery timeout elapsed")
            return True
        return False

    def force_open(self, now: float, duration: float | None = None) -> None:
        """Hold the breaker OPEN from *now* for *duration* seconds.

        Args:
          now: the current time.
          duration: how long; ``None`` means the configured ``recovery_timeout``. When it
            ends the breaker moves to HALF_OPEN as after any open period. :meth:`reset`
            undoes it.

        Raises:
          ValueError: if *duration* is not a finite number > 0.
          TypeError: if *duration* is not a number.
        """
        checked = check_duration(duration, "duration", allow_none=True)
        span = self.config.recovery_timeout if checked is None else checked
        self._last_time = now
        if self._disabled is not None:
            return  # already out of service for good; reset() or configure() ends it
        if self._state is _OPEN:
            self._next_attempt = now + span
            self._forced = True
        else:
            self._to_open(now, "forced open", span=span)
            self._forced = True

    def hold_open(
        self, now: float, span: float, reason: str, *, disabled: str | None = None
    ) -> bool:
        """Hold the breaker OPEN for at least *span* seconds from *now*, on a verdict
        made elsewhere (a fleet's): no outcome is counted. An OPEN breaker's deadline is
        only ever extended; a disabled breaker is left as it is.

        Args:
          now: the current time.
          span: seconds, a finite number > 0 (a hold without end is a disable).
          reason: the transition's reason, if it opens.
          disabled: take the breaker out of service with this reason (as
            :meth:`disable`, without counting a failure); *span* is then ignored.

        Returns:
          Whether anything changed.
        """
        span = seconds(span, "span") if disabled is None else math.inf
        if self._disabled is not None:
            return False
        until = now + span
        self._last_time = now
        if self._state is _OPEN:
            if until <= self._next_attempt:
                return False
            self._next_attempt = until
        else:
            self._to_open(now, reason, span=span)
        if disabled is not None:
            self._disabled = disabled
        return True

    def probe(self, now: float, reason: str) -> bool:
        """Move an OPEN breaker (not a disabled one) to HALF_OPEN at once, whatever its
        deadline: the fleet chose this breaker to probe for everyone.

        Returns:
          Whether the state changed.
        """
        if self._state is not _OPEN or self._disabled is not None:
            return False
        self._to_half_open(now, reason)
        return True

    def reset(self, now: float | None = None, reason: str = "reset") -> None:
        """Return to a fresh CLOSED breaker: counts, back-off, probes, force, the
        failure-rate window and a disable all cleared.

        Lifetime totals and the transition count are kept.

        Args:
          now: the current time, for the transition event and open-time accounting
            (default: the last time the breaker was given).
          reason: the transition's reason.
        """
        at = self._last_time if now is None else now
        self._failures = 0
        self._successes = 0
        self._probes = 0
        self._forced = False
        self._disabled = None
        self._rate_counts = None
        self._open_timeout = self.config.recovery_timeout
        if self._state is not _CLOSED:
            self._transition(_CLOSED, reason, at)

    def configure(self, config: CircuitBreakerConfig, now: float | None = None) -> None:
        """Replace the configuration.

        Counts carry over and are compared against the new thresholds at the next
        outcome; the open duration returns to the new ``recovery_timeout`` (an OPEN
        breaker's current deadline stands). A disabled breaker is put back in service,
        CLOSED. A new failure-rate window or threshold starts an empty window.
        """
        if not isinstance(config, CircuitBreakerConfig):
            raise TypeError(f"config: expected a CircuitBreakerConfig, got {type(config).__name__}")
        old = self.config
        self.config = config
        self._open_timeout = config.recovery_timeout
        if now is not None:
            self._last_time = now
        if (
            config.window != old.window
            or config.failure_rate_threshold != old.failure_rate_threshold
        ):
            self._rate_counts = None
        if self._disabled is not None:
            self._disabled = None
            self._transition(_CLOSED, "re-enabled by a new configuration", self._last_time)

    # -- transitions --------------------------------------------------------------------

    def _to_open(self, now: float, reason: str, span: float | None = None) -> None:
        self._next_attempt = now + (self._open_timeout if span is None else span)
        self._transition(_OPEN, reason, now)

    def _to_half_open(self, now: float, reason: str) -> None:
        self._transition(_HALF_OPEN, reason, now)

    def _to_closed(self, now: float, reason: str) -> None:
        self._open_timeout = self.config.recovery_timeout
        self._transition(_CLOSED, reason, now)

    def _transition(self, new: CircuitState, reason: str, now: float) -> None:
        old = self._state
        if self._opened_at is not None:  # leaving OPEN
            self._open_time += max(0.0, now - self._opened_at)
        self._state = new
        self._last_time = now
        self._failures = 0
        self._successes = 0
        self._probes = 0
        self._forced = False
        self._rate_counts = None
        self._opened_at = now if new is _OPEN else None
        self.generation += 1
        self.transitions += 1
        if self.on_transition is not None:
            self.on_transition(self, old, new, reason, now)


P = ParamSpec("P")
R = TypeVar("R")


def _locked(
    method: Callable[Concatenate[CircuitBreaker, P], R],
) -> Callable[Concatenate[CircuitBreaker, P], R]:
    """*method* of :class:`CircuitBreaker`, run while holding the breaker's lock."""

    @functools.wraps(method)
    def locked(self: CircuitBreaker, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with cast(threading.RLock, self._lock):
            return method(self, *args, **kwargs)

    return locked


class ThreadSafeCircuitBreaker(CircuitBreaker):
    """A :class:`CircuitBreaker` made with ``thread_safe=True``: every public method holds
    its re-entrant lock. Not made directly; ``CircuitBreaker(..., thread_safe=True)``
    returns one."""

    __slots__ = ()

    is_available = _locked(CircuitBreaker.is_available)
    check_and_raise = _locked(CircuitBreaker.check_and_raise)
    get_stats = _locked(CircuitBreaker.get_stats)
    acquire = _locked(CircuitBreaker.acquire)
    release = _locked(CircuitBreaker.release)
    record_success = _locked(CircuitBreaker.record_success)
    record_failure = _locked(CircuitBreaker.record_failure)
    record_rate_limited = _locked(CircuitBreaker.record_rate_limited)
    disable = _locked(CircuitBreaker.disable)
    record_error = _locked(CircuitBreaker.record_error)
    failure_rate = _locked(CircuitBreaker.failure_rate)
    advance = _locked(CircuitBreaker.advance)
    force_open = _locked(CircuitBreaker.force_open)
    hold_open = _locked(CircuitBreaker.hold_open)
    probe = _locked(CircuitBreaker.probe)
    reset = _locked(CircuitBreaker.reset)
    configure = _locked(CircuitBreaker.configure)
