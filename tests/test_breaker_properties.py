"""Property tests of the pure circuit breaker: arbitrary operation sequences checked step
by step against an independent reference model, and the invariants users rely on.

Time only moves forward: every generated delay is non-negative.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Literal, Protocol

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy, composite

from ciris_actors import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerError, CircuitState
from ciris_actors.breaker import RATE_BUCKETS
from ciris_actors.outcomes import ErrorClass, ErrorKind

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The model comparison checks everything the invariants below check, and more: it gets
#: the largest share of the time budget.
MODEL_SETTINGS = settings(SETTINGS, max_examples=600)

# -- reference model --------------------------------------------------------------------


class ModelBreaker:
    """The breaker's semantics, written out plainly and independently of ``breaker.py``."""

    def __init__(self, config: CircuitBreakerConfig) -> None:
        self.config = config
        self.state = CLOSED
        self.failures = 0
        self.successes = 0
        self.probes = 0
        self.open_for = config.recovery_timeout
        self.deadline: float | None = None
        self.forced = False
        self.generation = 0
        self.total_successes = 0
        self.total_failures = 0
        self.total_rejections = 0
        self.last_failure_time: float | None = None
        self.opened_at: float | None = None
        self.finished_open_time = 0.0
        self.log: list[tuple[CircuitState, CircuitState, float]] = []
        self.disabled: str | None = None
        #: CLOSED outcomes for the failure rate: (bucket number, failed), oldest first.
        self.window: list[tuple[int, bool]] = []

    @property
    def quota(self) -> int:
        return self.config.half_open_max_calls

    @property
    def next_attempt_time(self) -> float | None:
        return None if self.disabled is not None else self.deadline

    def bucket(self, now: float) -> int:
        return math.floor(now / (self.config.window / 10))

    def failure_rate(self, now: float) -> tuple[int, int] | None:
        if self.config.failure_rate_threshold is None or self.state is not CLOSED:
            return None
        live = [failed for b, failed in self.window if b > self.bucket(now) - 10]
        return sum(live), len(live)

    def is_available(self, now: float) -> bool:
        if self.state is CLOSED:
            return True
        if self.state is OPEN:
            assert self.deadline is not None
            return now >= self.deadline
        return self.probes < self.quota

    def time_in_open(self, now: float) -> float:
        if self.opened_at is None:
            return self.finished_open_time
        return self.finished_open_time + (now - self.opened_at)

    def _enter(self, new: CircuitState, now: float) -> None:
        if self.opened_at is not None:
            self.finished_open_time += now - self.opened_at
        self.log.append((self.state, new, now))
        self.state = new
        self.generation += 1
        self.failures = self.successes = self.probes = 0
        self.forced = False
        self.opened_at = now if new is OPEN else None
        self.deadline = None
        self.window = []

    def _open(self, now: float, span: float) -> None:
        self._enter(OPEN, now)
        self.deadline = now + span

    def _give_back(self, generation: int | None) -> None:
        if self.probes > 0 and generation in (None, self.generation):
            self.probes -= 1

    def acquire(self, now: float) -> bool:
        if self.state is CLOSED:
            return True
        if self.state is OPEN:
            assert self.deadline is not None
            if now < self.deadline:
                self.total_rejections += 1
                return False
            self._enter(HALF_OPEN, now)
        if self.probes >= self.quota:
            self.total_rejections += 1
            return False
        self.probes += 1
        return True

    def release(self, generation: int | None = None) -> None:
        self._give_back(generation)

    def record_success(self, now: float, generation: int | None = None) -> None:
        self.total_successes += 1
        if self.state is CLOSED:
            self.failures = 0
            self._note(now, failed=False)
        elif self.state is HALF_OPEN:
            self._give_back(generation)
            self.successes += 1
            if self.successes >= self.config.success_threshold:
                self.open_for = self.config.recovery_timeout
                self._enter(CLOSED, now)

    def record_failure(self, now: float, generation: int | None = None) -> None:
        self.total_failures += 1
        self.last_failure_time = now
        if self.state is CLOSED:
            self.failures += 1
            if self.failures >= self.config.failure_threshold:
                self._open(now, self.open_for)
            else:
                self._note(now, failed=True)
        elif self.state is HALF_OPEN:
            self._give_back(generation)
            self.open_for *= self.config.recovery_backoff
            cap = self.config.max_recovery_timeout
            if cap is not None and self.open_for > cap:
                self.open_for = cap
            self._open(now, self.open_for)

    def _note(self, now: float, *, failed: bool) -> None:
        threshold = self.config.failure_rate_threshold
        if threshold is None:
            return
        self.window = [(b, f) for b, f in self.window if b > self.bucket(now) - 10]
        self.window.append((self.bucket(now), failed))
        failures = sum(f for _, f in self.window)
        if len(self.window) >= self.config.minimum_calls and failures >= threshold * len(
            self.window
        ):
            self._open(now, self.open_for)

    def record_rate_limited(
        self, now: float, generation: int | None = None, retry_after: float | None = None
    ) -> None:
        self.total_failures += 1
        self.last_failure_time = now
        until = now + (self.open_for if retry_after is None else retry_after)
        if self.state is OPEN:
            assert self.deadline is not None
            self.deadline = max(self.deadline, until)
        else:
            self._open(now, until - now)

    def disable(self, now: float, reason: str) -> None:
        self.total_failures += 1
        self.last_failure_time = now
        if self.disabled is not None:
            return
        if self.state is not OPEN:
            self._open(now, math.inf)
        self.deadline = math.inf
        self.disabled = reason

    def record_error(
        self, now: float, error_class: ErrorClass, generation: int | None = None
    ) -> None:
        if error_class.kind is ErrorKind.FAILURE:
            self.record_failure(now, generation)
        elif error_class.kind is ErrorKind.SUCCESS:
            self.record_success(now, generation)
        elif error_class.kind is ErrorKind.RATE_LIMITED:
            self.record_rate_limited(now, generation, error_class.retry_after)
        elif error_class.kind is ErrorKind.DISABLE:
            self.disable(now, error_class.reason)
        else:  # ignore, reroute: not the provider's doing; only the permit goes back
            self._give_back(generation)

    def advance(self, now: float) -> bool:
        if self.state is OPEN:
            assert self.deadline is not None
            if now >= self.deadline:
                self._enter(HALF_OPEN, now)
                return True
        return False

    def force_open(self, now: float, duration: float | None = None) -> None:
        # Without a duration: the configured recovery_timeout, whatever the back-off.
        span = self.config.recovery_timeout if duration is None else duration
        if self.disabled is not None:
            return
        if self.state is OPEN:
            self.deadline = now + span
        else:
            self._open(now, span)
        self.forced = True

    def reset(self, now: float | None = None) -> None:
        self.failures = self.successes = self.probes = 0
        self.forced = False
        self.open_for = self.config.recovery_timeout
        self.disabled = None
        self.window = []
        if self.state is not CLOSED:
            assert now is not None
            self._enter(CLOSED, now)


# -- operations -------------------------------------------------------------------------

#: Which generation an outcome or release carries: none, the current one, or a stale one.
GenerationChoice = Literal["none", "current", "stale"]


@attrs.frozen
class Wait:
    delay: float


@attrs.frozen
class WaitForDeadline:
    """Move the clock to the OPEN deadline, or to the last instant before it."""

    just_before: bool


@attrs.frozen
class Acquire:
    pass


@attrs.frozen
class Release:
    generation: GenerationChoice


@attrs.frozen
class Success:
    generation: GenerationChoice


@attrs.frozen
class Failure:
    generation: GenerationChoice


@attrs.frozen
class Call:
    """A whole guarded call: acquire and, if admitted, record its outcome with the
    generation read at admission."""

    succeeds: bool


@attrs.frozen
class Classified:
    """An outcome recorded by its error class, with a generation like ``Failure``'s."""

    error_class: ErrorClass
    generation: GenerationChoice


@attrs.frozen
class ClassifiedCall:
    """A whole guarded call that raised an error of this class."""

    error_class: ErrorClass


@attrs.frozen
class Advance:
    pass


@attrs.frozen
class ForceOpen:
    duration: float | None


@attrs.frozen
class Reset:
    pass


Op = (
    Wait
    | WaitForDeadline
    | Acquire
    | Release
    | Success
    | Failure
    | Call
    | Classified
    | ClassifiedCall
    | Advance
    | ForceOpen
    | Reset
)

generation_choices: SearchStrategy[GenerationChoice] = st.sampled_from(["none", "current", "stale"])
delays = st.one_of(
    st.just(0.0),
    st.integers(0, 12).map(float),
    st.floats(0.0, 40.0, allow_nan=False, allow_infinity=False),
)
durations = st.one_of(
    st.none(), st.floats(0.01, 50.0, allow_nan=False), st.integers(1, 20).map(float)
)

#: Each kind of operation and how often, relatively, a run of it is drawn.
OPERATION_KINDS: tuple[tuple[SearchStrategy[Op], int], ...] = (
    (st.just(Acquire()), 2),
    (st.builds(Success, generation_choices), 2),
    (st.builds(Failure, generation_choices), 2),
    (st.just(Call(succeeds=True)), 2),
    (st.just(Call(succeeds=False)), 2),
    (st.builds(Release, generation_choices), 1),
    (st.builds(Wait, delays), 2),
    (st.builds(WaitForDeadline, st.booleans()), 4),
    (st.just(Advance()), 1),
    (st.builds(ForceOpen, durations), 1),
    (st.just(Reset()), 1),
)

#: Wait out the OPEN deadline, then 1..5 probes of one kind: whole calls that succeed,
#: whole calls that fail, or admissions whose permits stay out.
probes_at_deadline: SearchStrategy[list[Op]] = st.builds(
    lambda probe, n: [WaitForDeadline(just_before=False), *[probe] * n],
    st.sampled_from([Call(succeeds=True), Call(succeeds=False), Acquire()]),
    st.integers(1, 5),
)


error_classes: SearchStrategy[ErrorClass] = st.one_of(
    st.just(ErrorClass.failure()),
    st.just(ErrorClass.ignore()),
    st.just(ErrorClass.success()),
    st.builds(
        ErrorClass.rate_limited,
        st.none() | st.floats(0.0, 90.0) | st.integers(0, 30).map(float),
    ),
    st.sampled_from(["revoked key", "no such model"]).map(ErrorClass.disable),
    st.just(ErrorClass.reroute(require=("long_context",))),
)

#: The seed's operations plus outcomes recorded by error class.
CLASSIFIED_KINDS: tuple[tuple[SearchStrategy[Op], int], ...] = (
    *OPERATION_KINDS,
    (st.builds(Classified, error_classes, generation_choices), 3),
    (st.builds(ClassifiedCall, error_classes), 3),
)


def op_lists(
    kinds: tuple[tuple[SearchStrategy[Op], int], ...] = OPERATION_KINDS,
) -> SearchStrategy[list[Op]]:
    """Sequences of operations, drawn as runs of one kind and probes at the deadline.

    Runs matter: a breaker only opens on a run of ``failure_threshold`` failures and only
    closes on a run of ``success_threshold`` half-open successes, which uniformly mixed
    operations almost never produce, so paths like trip, probe, fail, back off, probe,
    close would go untested.
    """
    runs = [st.lists(kind, min_size=1, max_size=5) for kind, weight in kinds for _ in range(weight)]
    chunks = st.one_of(*runs, *[probes_at_deadline] * 6)
    return st.lists(chunks, min_size=8, max_size=40).map(
        lambda chunks: [op for chunk in chunks for op in chunk]
    )


@composite
def configs(draw: DrawFn, *, rates: bool = True) -> CircuitBreakerConfig:
    """Breaker configurations; with *rates*, half of them also trip on a failure rate."""
    recovery = draw(
        st.one_of(st.integers(1, 10).map(float), st.floats(0.01, 30.0, allow_nan=False))
    )
    cap = draw(st.none() | st.floats(recovery, recovery * 3, allow_nan=False))
    kwargs: dict[str, Any] = {
        "failure_threshold": draw(st.integers(1, 5)),
        "success_threshold": draw(st.integers(1, 5)),
        "recovery_timeout": recovery,
        "recovery_backoff": draw(st.one_of(st.just(1.0), st.just(2.0), st.floats(1.0, 3.0))),
        "max_recovery_timeout": cap,
    }
    quota = draw(st.none() | st.integers(1, 5))
    if quota is not None:
        kwargs["half_open_max_calls"] = quota
    if rates and draw(st.booleans()):
        kwargs["failure_rate_threshold"] = draw(
            st.sampled_from([0.25, 0.5, 1.0]) | st.floats(0.01, 1.0)
        )
        kwargs["minimum_calls"] = draw(st.integers(1, 8))
        kwargs["window"] = draw(st.sampled_from([5.0, 10.0, 60.0]) | st.floats(0.5, 100.0))
    return CircuitBreakerConfig(**kwargs)


class Target(Protocol):
    """What the operations drive: the real breaker or the model."""

    @property
    def generation(self) -> int: ...

    @property
    def next_attempt_time(self) -> float | None: ...

    def acquire(self, now: float) -> bool: ...

    def release(self, generation: int | None = None) -> None: ...

    def record_success(self, now: float, generation: int | None = None) -> None: ...

    def record_failure(self, now: float, generation: int | None = None) -> None: ...

    def record_error(
        self, now: float, error_class: ErrorClass, generation: int | None = None
    ) -> None: ...

    def advance(self, now: float) -> bool: ...

    def force_open(self, now: float, duration: float | None = None) -> None: ...

    def reset(self, now: float | None = None) -> None: ...


def pick_generation(choice: GenerationChoice, current: int) -> int | None:
    if choice == "none":
        return None
    return current if choice == "current" else current - 1


def apply(target: Target, op: Op, now: float) -> tuple[float, bool | None]:
    """Apply *op* to *target* at *now*.

    Returns:
      The clock after the operation (never earlier than *now*) and, for an admission
      (``Acquire``, ``Call``) or ``Advance``, what it returned.
    """
    if isinstance(op, Wait):
        return now + op.delay, None
    if isinstance(op, WaitForDeadline):
        deadline = target.next_attempt_time
        if deadline is not None:
            now = max(now, math.nextafter(deadline, -math.inf) if op.just_before else deadline)
        return now, None
    if isinstance(op, Acquire):
        return now, target.acquire(now)
    if isinstance(op, Call):
        admitted = target.acquire(now)
        if admitted:
            generation = target.generation
            if op.succeeds:
                target.record_success(now, generation=generation)
            else:
                target.record_failure(now, generation=generation)
        return now, admitted
    if isinstance(op, ClassifiedCall):
        admitted = target.acquire(now)
        if admitted:
            target.record_error(now, op.error_class, generation=target.generation)
        return now, admitted
    if isinstance(op, Advance):
        return now, target.advance(now)
    if isinstance(op, Release):
        target.release(pick_generation(op.generation, target.generation))
    elif isinstance(op, Success):
        target.record_success(now, pick_generation(op.generation, target.generation))
    elif isinstance(op, Failure):
        target.record_failure(now, pick_generation(op.generation, target.generation))
    elif isinstance(op, Classified):
        target.record_error(now, op.error_class, pick_generation(op.generation, target.generation))
    elif isinstance(op, ForceOpen):
        target.force_open(now, op.duration)
    else:
        target.reset(now)
    return now, None


# -- the breaker against the model ------------------------------------------------------


def observed(breaker: CircuitBreaker, now: float) -> dict[str, object]:
    stats = breaker.get_stats(now)
    return {
        "state": breaker.state,
        "failure_count": breaker.failure_count,
        "success_count": breaker.success_count,
        "probes_in_flight": breaker.probes_in_flight,
        "next_attempt_time": breaker.next_attempt_time,
        "is_available": breaker.is_available(now),
        "forced": breaker.forced,
        "generation": breaker.generation,
        "transitions": breaker.transitions,
        "total_successes": breaker.total_successes,
        "total_failures": breaker.total_failures,
        "total_rejections": breaker.total_rejections,
        "last_failure_time": breaker.last_failure_time,
        "current_recovery_timeout": stats["current_recovery_timeout"],
        "stats_state": stats["state"],
        "disabled": (breaker.disabled, stats["disabled"]),
        "failure_rate": breaker.failure_rate(now),
    }


def expected(model: ModelBreaker, now: float) -> dict[str, object]:
    return {
        "state": model.state,
        "failure_count": model.failures,
        "success_count": model.successes,
        "probes_in_flight": model.probes,
        "next_attempt_time": model.next_attempt_time,
        "is_available": model.is_available(now),
        "forced": model.forced,
        "generation": model.generation,
        "transitions": model.generation,
        "total_successes": model.total_successes,
        "total_failures": model.total_failures,
        "total_rejections": model.total_rejections,
        "last_failure_time": model.last_failure_time,
        "current_recovery_timeout": model.open_for,
        "stats_state": model.state.value,
        "disabled": (model.disabled, model.disabled),
        "failure_rate": model.failure_rate(now),
    }


@settings(MODEL_SETTINGS)
@given(config=configs(), ops=op_lists() | op_lists(CLASSIFIED_KINDS))
def test_breaker_matches_the_reference_model_after_every_step(
    config: CircuitBreakerConfig, ops: list[Op]
) -> None:
    """Every operation, outcomes recorded by error class included, leaves the breaker
    exactly where the reference model says, with the same return values and the same
    transitions reported to ``on_transition``."""
    log: list[tuple[CircuitState, CircuitState, float]] = []

    def on_transition(
        who: CircuitBreaker, old: CircuitState, new: CircuitState, reason: str, now: float
    ) -> None:
        assert who is breaker
        log.append((old, new, now))

    breaker = CircuitBreaker("svc", config, on_transition=on_transition)
    model = ModelBreaker(config)
    now = 0.0
    for step, op in enumerate(ops):
        model_now, model_result = apply(model, op, now)
        now, result = apply(breaker, op, now)
        assert (now, result) == (model_now, model_result), (step, op)
        assert observed(breaker, now) == expected(model, now), (step, op)
        assert breaker.get_stats(now)["time_in_open"] == pytest.approx(model.time_in_open(now))
        assert log == model.log


# -- invariants -------------------------------------------------------------------------


@SETTINGS
@given(config=configs(), ops=op_lists())
def test_open_never_admits_before_its_deadline(config: CircuitBreakerConfig, ops: list[Op]) -> None:
    """Once OPEN at time t, no call is admitted (and the breaker stays OPEN) before
    t + recovery_timeout, or t + duration for ``force_open(t, duration)``; only ``reset``
    or a later ``force_open`` ends that hold sooner."""
    breaker = CircuitBreaker("svc", config)
    hold_until: float | None = None
    now = 0.0
    for op in ops:
        generation = breaker.generation
        held = hold_until is not None and now < hold_until
        now, admitted = apply(breaker, op, now)
        if held and isinstance(op, Acquire | Call):
            assert not admitted
        if isinstance(op, ForceOpen):
            hold_until = now + (config.recovery_timeout if op.duration is None else op.duration)
        elif isinstance(op, Reset):
            hold_until = None
        elif breaker.state is OPEN and breaker.generation != generation:
            hold_until = now + config.recovery_timeout  # a new open period began at now

        if hold_until is not None and now < hold_until:
            assert breaker.state is OPEN
            assert not breaker.is_available(now)
            next_attempt = breaker.next_attempt_time
            assert next_attempt is not None
            assert next_attempt >= hold_until
            with pytest.raises(CircuitBreakerError) as excinfo:
                breaker.check_and_raise(now)
            assert excinfo.value.state is OPEN
            assert excinfo.value.next_attempt_time == next_attempt


@SETTINGS
@given(config=configs(), ops=op_lists(), data=st.data())
def test_half_open_never_has_more_than_quota_probes_out(
    config: CircuitBreakerConfig, ops: list[Op], data: st.DataObject
) -> None:
    """The permits the caller holds from the current HALF_OPEN period never exceed
    ``half_open_max_calls``, and ``probes_in_flight`` counts exactly those permits."""
    breaker = CircuitBreaker("svc", config)
    # Every call the test was admitted for and has not finished: the generation at
    # admission, and whether it was admitted as a HALF_OPEN probe.
    calls: list[tuple[int, bool]] = []
    now = 0.0

    def finish_a_call() -> int:
        """End one admitted call (chosen by hypothesis), returning its generation; with no
        call outstanding, return a generation that matches no period."""
        if not calls:
            return -1
        generation, _ = calls.pop(data.draw(st.integers(0, len(calls) - 1)))
        return generation

    for op in ops:
        if isinstance(op, Acquire):
            if breaker.acquire(now):
                calls.append((breaker.generation, breaker.state is HALF_OPEN))
        elif isinstance(op, Release):
            breaker.release(finish_a_call())
        elif isinstance(op, Success):
            breaker.record_success(now, generation=finish_a_call())
        elif isinstance(op, Failure):
            breaker.record_failure(now, generation=finish_a_call())
        else:
            now, _ = apply(breaker, op, now)  # waits, whole calls, advance, force, reset

        held = sum(probe and g == breaker.generation for g, probe in calls)
        assert held <= config.half_open_max_calls
        assert breaker.probes_in_flight == (held if breaker.state is HALF_OPEN else 0)
        if breaker.state is HALF_OPEN:
            assert breaker.is_available(now) == (held < config.half_open_max_calls)


@SETTINGS
@given(config=configs(rates=False), outcomes=st.lists(st.booleans(), max_size=40))
def test_closed_opens_exactly_at_threshold_th_consecutive_failure(
    config: CircuitBreakerConfig, outcomes: list[bool]
) -> None:
    """From CLOSED, the breaker stays CLOSED while the run of consecutive failures is
    shorter than ``failure_threshold`` and is OPEN right after the failure that reaches it
    (``True`` is a success, ``False`` a failure)."""
    breaker = CircuitBreaker("svc", config)
    run = 0
    for t, succeeded in enumerate(outcomes):
        now = float(t)
        if succeeded:
            breaker.record_success(now)
            run = 0
        else:
            breaker.record_failure(now)
            run += 1
        if run < config.failure_threshold:
            assert breaker.state is CLOSED
            assert breaker.failure_count == run
            assert breaker.acquire(now)
        else:
            assert breaker.state is OPEN
            assert breaker.next_attempt_time == now + config.recovery_timeout
            return


Read = Literal["state", "is_available", "check_and_raise", "get_stats"]
reads_at_times: SearchStrategy[list[tuple[Wait | WaitForDeadline, Read]]] = st.lists(
    st.tuples(
        st.one_of(st.builds(Wait, delays), st.builds(WaitForDeadline, st.booleans())),
        st.sampled_from(["state", "is_available", "check_and_raise", "get_stats"]),
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(config=configs(), ops=op_lists(), reads=reads_at_times)
def test_reading_state_never_changes_it(
    config: CircuitBreakerConfig,
    ops: list[Op],
    reads: list[tuple[Wait | WaitForDeadline, Read]],
) -> None:
    """``state``, ``is_available``, ``check_and_raise`` and ``get_stats`` at any time,
    including at and past an OPEN deadline, leave every field of the breaker unchanged
    and report no transition."""
    transitions: list[CircuitState] = []
    breaker = CircuitBreaker(
        "svc", config, on_transition=lambda _b, _old, new, _r, _t: transitions.append(new)
    )
    now = 0.0
    for op in ops:
        now, _ = apply(breaker, op, now)
    before = (breaker.get_stats(), breaker.get_stats(now), breaker.generation, len(transitions))

    at = now
    for wait, read in reads:
        at, _ = apply(breaker, wait, at)  # a wait only moves the clock
        if read == "state":
            assert isinstance(breaker.state, CircuitState)
        elif read == "is_available":
            breaker.is_available(at)
        elif read == "check_and_raise":
            with contextlib.suppress(CircuitBreakerError):
                breaker.check_and_raise(at)
        else:
            breaker.get_stats(at)

    after = (breaker.get_stats(), breaker.get_stats(now), breaker.generation, len(transitions))
    assert after == before


# -- error classes ----------------------------------------------------------------------

classified_ops = op_lists(CLASSIFIED_KINDS)


def _error_class(op: Op) -> ErrorClass | None:
    return op.error_class if isinstance(op, Classified | ClassifiedCall) else None


@SETTINGS
@given(config=configs(), ops=classified_ops)
def test_a_rate_limit_never_shortens_an_open_deadline(
    config: CircuitBreakerConfig, ops: list[Op]
) -> None:
    """After a ``rate_limited(retry_after)`` outcome at t the breaker is OPEN until at
    least t + retry_after, and a deadline it already had is never moved earlier."""
    breaker = CircuitBreaker("svc", config)
    now = 0.0
    for op in ops:
        error_class = _error_class(op)
        before = breaker.next_attempt_time if breaker.state is OPEN else None
        disabled = breaker.disabled
        now, admitted = apply(breaker, op, now)
        if error_class is None or error_class.kind is not ErrorKind.RATE_LIMITED:
            continue
        if isinstance(op, ClassifiedCall) and not admitted:
            continue  # refused: nothing was recorded
        assert breaker.state is OPEN
        assert breaker.disabled == disabled  # a rate limit neither disables nor re-enables
        after = breaker.next_attempt_time
        if disabled is not None:
            assert after is None  # held open for good, not by a deadline
            continue
        assert after is not None
        if error_class.retry_after is not None:
            assert after >= now + error_class.retry_after
        if before is not None:
            assert after >= before


@SETTINGS
@given(config=configs(), ops=classified_ops)
def test_ignore_and_reroute_never_change_the_breaker_but_return_the_permit(
    config: CircuitBreakerConfig, ops: list[Op]
) -> None:
    """An ``ignore`` or ``reroute`` outcome leaves state, counts, totals, deadline and
    failure-rate window as they were; only a half-open permit it carried goes back."""
    breaker = CircuitBreaker("svc", config)
    now = 0.0
    for op in ops:
        error_class = _error_class(op)
        if error_class is None or error_class.kind not in (ErrorKind.IGNORE, ErrorKind.REROUTE):
            now, _ = apply(breaker, op, now)
            continue
        if isinstance(op, ClassifiedCall):
            if not breaker.acquire(now):
                continue
            generation: int | None = breaker.generation
        else:
            assert isinstance(op, Classified)
            generation = pick_generation(op.generation, breaker.generation)
        before = breaker.get_stats(now)
        rate = breaker.failure_rate(now)
        breaker.record_error(now, error_class, generation)
        after = breaker.get_stats(now)
        returned = before["probes_in_flight"] - after["probes_in_flight"]
        assert returned == (
            1 if before["probes_in_flight"] and generation in (None, breaker.generation) else 0
        )
        del before["probes_in_flight"], after["probes_in_flight"]
        assert after == before
        assert breaker.failure_rate(now) == rate


@SETTINGS
@given(config=configs(), ops=classified_ops, reason=st.sampled_from(["revoked key", "no model"]))
def test_a_disabled_breaker_admits_nothing_until_reset(
    config: CircuitBreakerConfig, ops: list[Op], reason: str
) -> None:
    """Once disabled, no operation but ``reset`` (not time, successes, probes or
    ``force_open``) lets a call through; the reason stays the first one given."""
    breaker = CircuitBreaker("svc", config)
    breaker.disable(0.0, reason)
    now = 0.0
    for op in ops:
        if isinstance(op, Reset):
            break
        now, admitted = apply(breaker, op, now)
        assert not admitted
        assert breaker.state is OPEN
        assert breaker.disabled == reason
        assert not breaker.is_available(now + 1e9)
        assert breaker.next_attempt_time is None
    breaker.reset(now)
    assert breaker.disabled is None
    assert breaker.acquire(now)


@SETTINGS
@given(config=configs(), ops=classified_ops)
def test_the_failure_rate_window_is_a_fixed_number_of_buckets_whatever_the_traffic(
    config: CircuitBreakerConfig, ops: list[Op]
) -> None:
    """However many outcomes arrive, the window keeps ten buckets of two counters: its
    memory does not grow with traffic (the breaker's only record of the window)."""
    breaker = CircuitBreaker("svc", config)
    now = 0.0
    for op in ops * 5:
        now, _ = apply(breaker, op, now)
        counts = breaker._rate_counts
        assert counts is None or len(counts) == 2 * RATE_BUCKETS
        rate = breaker.failure_rate(now)
        if rate is not None:
            failures, calls = rate
            assert 0 <= failures <= calls
