"""The fault kinds a scenario schedules on its providers: one frozen class per kind, each
registered by its :class:`FaultKind` for the scenario parser.

A new kind is a :class:`FaultKind` member and a :class:`Fault` subclass here that declares
its settings with :func:`setting` and overrides the hooks for what it does. The *class
faults* (``rate_limit``, ``bad_credentials``, ``context_overflow``) refuse calls with
HTTP-shaped errors (:class:`~.errors.SimulatedError` with a status) that a registry's
classifier reads, as it would a real client's.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import attrs

from .errors import SimulatedError

__all__ = [
    "BadCredentialsFault",
    "ContextOverflowFault",
    "CrashFault",
    "ErrorsFault",
    "Fault",
    "FaultKind",
    "FaultSetting",
    "FlapFault",
    "LatencyFault",
    "OutageFault",
    "RateLimitFault",
    "SlowStartFault",
    "fault_class",
    "fault_classes",
    "fault_settings",
    "register_fault",
    "setting",
]


class FaultKind(enum.Enum):
    """What a fault does to its provider while it lasts (Toxiproxy's kinds, and more)."""

    #: Calls fail and health checks fail.
    OUTAGE = "outage"
    #: Calls fail with probability ``error_rate``; health checks still pass.
    ERRORS = "errors"
    #: Calls take ``added_latency`` more seconds (beyond ``timeout_duration``: a hang).
    LATENCY = "latency"
    #: The provider's ``run()`` raises every ``interval`` seconds (or once), so the
    #: supervisor restarts it; fast enough, it exceeds the restart intensity.
    CRASH = "crash"
    #: Health checks alternate between failing and passing every ``period`` seconds;
    #: calls fail while health fails.
    FLAP = "flap"
    #: Each (re)start takes ``start_delay`` seconds while the fault lasts.
    SLOW_START = "slow_start"
    #: Calls are refused with HTTP 429 and a ``Retry-After`` of ``retry_after`` seconds;
    #: health checks still pass.
    RATE_LIMIT = "rate_limit"
    #: Calls are refused with HTTP 401 (a revoked key); health checks still pass. At its
    #: end an operator resets the provider's breaker.
    BAD_CREDENTIALS = "bad_credentials"
    #: Calls of long requests are refused with HTTP 400 "maximum context length
    #: exceeded"; other calls and health checks are unaffected.
    CONTEXT_OVERFLOW = "context_overflow"


@attrs.frozen
class FaultSetting:
    """One setting of a fault kind, as a scenario file gives it.

    Attributes:
      name: the field, in the fault's table and on its class.
      default: its value when the table leaves it out.
      minimum: the lowest value accepted.
      exclusive: whether ``minimum`` itself is refused (the value must be above it).
      maximum: the highest value accepted, if any.
    """

    name: str
    default: float
    minimum: float = 0.0
    exclusive: bool = False
    maximum: float | None = None


#: The key of a setting's :class:`FaultSetting` (without its name) in attrs metadata.
_SETTING = "ciris_actors.fault_setting"


def setting(
    default: float, *, minimum: float = 0.0, exclusive: bool = False, maximum: float | None = None
) -> float:
    """Declare a fault kind's setting: an attrs field the scenario parser reads and checks.

    Args:
      default: its value when a scenario leaves it out.
      minimum: the lowest value a scenario may give.
      exclusive: refuse ``minimum`` itself.
      maximum: the highest value a scenario may give, if any.

    Returns:
      The attrs field, typed as its value for the class body.
    """
    rule = FaultSetting("", default, minimum, exclusive, maximum)
    result: float = attrs.field(default=default, metadata={_SETTING: rule})
    return result


def _node_ids(nodes: Iterable[str]) -> tuple[str, ...]:
    return tuple(nodes)


@attrs.frozen
class Fault:
    """A fault on one provider from ``at`` for ``duration`` seconds: the base of the kinds.

    Each kind is a subclass (:class:`OutageFault`, :class:`ErrorsFault`, ...) with its own
    settings. Its hooks say what it does to the provider; a :class:`SimulatedProvider`
    asks the hooks of the faults active at an instant (of each kind, the one that
    started first) and combines the answers. The defaults do nothing.

    ``Fault.of(kind, provider, at=..., duration=..., **settings)`` builds a fault of a
    kind given by name or :class:`FaultKind`, as ``Fault(kind, ...)`` did when one class
    held every kind's settings.

    Attributes:
      kind: what it does (a class attribute of each kind).
      provider: the name of the provider it strikes.
      at: when it starts, in scenario seconds.
      duration: how long it lasts, in seconds.
      nodes: in a fleet scenario, the nodes whose provider it strikes (a local network
        problem of theirs); empty (the default): every node's.
    """

    #: What it does (each kind's class sets it).
    kind: ClassVar[FaultKind]
    #: For a fault that refuses calls (:meth:`refusal`): its rank when several refuse a
    #: call at once, lowest first (a server checks the key, then the quota, then the
    #: request). ``None``: it never refuses a call.
    refusal_rank: ClassVar[int | None] = None
    #: Whether an operator resets the provider's breaker (``reset_circuit_breaker``) at
    #: the fault's end.
    reset_at_end: ClassVar[bool] = False
    provider: str
    at: float
    duration: float
    nodes: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_node_ids)

    def __attrs_pre_init__(self) -> None:
        if type(self) is Fault:
            raise TypeError(
                "Fault is the base of the fault kinds: build OutageFault(...),"
                " ErrorsFault(...), ..., or Fault.of(kind, provider, at=..., duration=...)"
            )

    @classmethod
    def of(
        cls, kind: FaultKind | str, provider: str, at: float, duration: float, **settings: float
    ) -> Fault:
        """A fault of *kind* (a :class:`FaultKind` or its value) with *settings*.

        As in a scenario file, a setting of another kind is accepted and ignored.

        Raises:
          ValueError: *kind* is not a fault kind.
          TypeError: a setting is no kind's.
        """
        chosen = fault_class(FaultKind(kind))
        own = {s.name for s in fault_settings(chosen)}
        known = {s.name for c in fault_classes() for s in fault_settings(c)}
        for name in settings:
            if name not in known:
                raise TypeError(f"{name!r} is not a setting of any fault kind")
        values: dict[str, Any] = {name: value for name, value in settings.items() if name in own}
        return chosen(provider, at, duration, **values)

    @property
    def end(self) -> float:
        """When the fault stops."""
        return self.at + self.duration

    def strikes(self, node: str | None) -> bool:
        """Whether it strikes the provider of *node* (``None``: a run without a fleet)."""
        return not self.nodes or node is None or node in self.nodes

    def is_active(self, t: float) -> bool:
        """Whether the fault lasts at scenario time *t*: ``at <= t < end``."""
        return self.at <= t < self.end

    # -- hooks: what the fault does while active (asked only then) ------------------------

    def is_down(self, t: float) -> bool:
        """Whether the provider can serve nothing at *t*: its calls and checks fail."""
        return False

    def extra_latency(self) -> float:
        """Seconds added to every call and health check."""
        return 0.0

    def failure_rate(self) -> float | None:
        """The probability that a call fails although the provider is up, combined with
        the provider's own error rate; ``None`` for no effect."""
        return None

    def startup_delay(self) -> float | None:
        """Seconds a ``start()`` takes, instead of the provider's own; ``None`` for no
        effect."""
        return None

    def refusal(self, long: bool) -> SimulatedError | None:
        """The HTTP-shaped error a call gets (*long*: a call of a long request) instead
        of an answer, a new one each time; ``None`` for no effect. Asked only of kinds
        with a :attr:`refusal_rank`."""
        return None

    # -- asked whether active or not ----------------------------------------------------------

    def next_crash(self, after: float) -> float | None:
        """The first instant strictly after *after* at which the provider's ``run()``
        raises, if any."""
        return None


_F = TypeVar("_F", bound=type[Fault])

#: The class of each kind, in registration order (the order of :class:`FaultKind`).
_KINDS: dict[FaultKind, type[Fault]] = {}


def register_fault(cls: _F) -> _F:
    """Class decorator: make *cls* the class of its ``kind`` for the scenario parser.

    Raises:
      ValueError: another class is registered for that kind.
    """
    if cls.kind in _KINDS:
        raise ValueError(f"fault kind {cls.kind.value!r} already has {_KINDS[cls.kind].__name__}")
    _KINDS[cls.kind] = cls
    return cls


def fault_class(kind: FaultKind) -> type[Fault]:
    """The class of fault *kind*.

    Raises:
      ValueError: no class is registered for *kind*.
    """
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"no fault class for kind {kind.value!r}") from None


def fault_classes() -> Iterator[type[Fault]]:
    """Every registered fault class, in the order of :class:`FaultKind`."""
    return iter(_KINDS.values())


def fault_settings(cls: type[Fault]) -> tuple[FaultSetting, ...]:
    """The settings *cls* declares with :func:`setting`, in declaration order."""
    result = []
    for field in attrs.fields(cls):
        rule = field.metadata.get(_SETTING)
        if isinstance(rule, FaultSetting):
            result.append(attrs.evolve(rule, name=field.name))
    return tuple(result)


# -- the kinds -------------------------------------------------------------------------------


@register_fault
@attrs.frozen
class OutageFault(Fault):
    """Calls fail and health checks fail while it lasts."""

    kind: ClassVar[FaultKind] = FaultKind.OUTAGE

    def is_down(self, t: float) -> bool:
        """Down throughout."""
        return True


@register_fault
@attrs.frozen
class ErrorsFault(Fault):
    """Calls fail with probability ``error_rate`` (on top of the provider's own); health
    checks still pass.

    Attributes:
      error_rate: the probability, 0 to 1 (default 1).
    """

    kind: ClassVar[FaultKind] = FaultKind.ERRORS
    error_rate: float = setting(1.0, maximum=1.0)

    def failure_rate(self) -> float | None:
        """``error_rate``."""
        return self.error_rate


@register_fault
@attrs.frozen
class LatencyFault(Fault):
    """Calls and health checks take ``added_latency`` more seconds (beyond the breaker's
    ``timeout_duration``: a hang).

    Attributes:
      added_latency: the seconds added (default 0).
    """

    kind: ClassVar[FaultKind] = FaultKind.LATENCY
    added_latency: float = setting(0.0)

    def extra_latency(self) -> float:
        """``added_latency``."""
        return self.added_latency


@register_fault
@attrs.frozen
class CrashFault(Fault):
    """The provider's ``run()`` raises at ``at``, then every ``interval`` seconds while the
    fault lasts, so the supervisor restarts it (or makes it FAILED).

    Attributes:
      interval: seconds between crashes (0, the default: crash once, at ``at``).
    """

    kind: ClassVar[FaultKind] = FaultKind.CRASH
    interval: float = setting(0.0)

    def next_crash(self, after: float) -> float | None:
        """The first crash instant strictly after *after* and before the end."""
        if self.end <= after:
            return None
        if self.at > after:
            return self.at
        if self.interval <= 0:
            return None
        steps = math.floor((after - self.at) / self.interval) + 1
        instant = self.at + steps * self.interval
        return instant if instant < self.end else None


@register_fault
@attrs.frozen
class FlapFault(Fault):
    """Health fails for ``period`` seconds, then passes for ``period``, and so on; calls
    fail during the failing halves.

    Attributes:
      period: the length of each half, in seconds (> 0, default 30).
    """

    kind: ClassVar[FaultKind] = FaultKind.FLAP
    period: float = setting(30.0, exclusive=True)

    def is_down(self, t: float) -> bool:
        """Down when ``floor((t - at) / period)`` is even."""
        return int((t - self.at) // self.period) % 2 == 0


@register_fault
@attrs.frozen
class SlowStartFault(Fault):
    """A ``start()`` that begins while it lasts takes ``start_delay`` seconds.

    Attributes:
      start_delay: the seconds each start takes (default 30).
    """

    kind: ClassVar[FaultKind] = FaultKind.SLOW_START
    start_delay: float = setting(30.0)

    def startup_delay(self) -> float | None:
        """``start_delay``."""
        return self.start_delay


@register_fault
@attrs.frozen
class RateLimitFault(Fault):
    """Calls are refused with HTTP 429 Too Many Requests and a ``Retry-After`` header of
    ``retry_after`` seconds; health checks still pass.

    Attributes:
      retry_after: the seconds the ``Retry-After`` header asks for (default 30).
    """

    kind: ClassVar[FaultKind] = FaultKind.RATE_LIMIT
    refusal_rank: ClassVar[int | None] = 1
    retry_after: float = setting(30.0)

    def refusal(self, long: bool) -> SimulatedError | None:
        """A 429 with ``Retry-After``."""
        wait = _header_seconds(self.retry_after)
        return SimulatedError(
            f"rate limit exceeded, retry after {wait} s (simulated)",
            status_code=429,
            headers={"retry-after": wait},
            code="rate_limit_exceeded",
        )


@register_fault
@attrs.frozen
class BadCredentialsFault(Fault):
    """Calls are refused with HTTP 401 Unauthorized (a revoked API key); health checks
    still pass. At the end of the fault the key works again and an operator resets the
    provider's breaker, which re-enables it if a classifier disabled it."""

    kind: ClassVar[FaultKind] = FaultKind.BAD_CREDENTIALS
    refusal_rank: ClassVar[int | None] = 0
    reset_at_end: ClassVar[bool] = True

    def refusal(self, long: bool) -> SimulatedError | None:
        """A 401."""
        return SimulatedError(
            "invalid API key (simulated revoked key)",
            status_code=401,
            code="invalid_api_key",
        )


@register_fault
@attrs.frozen
class ContextOverflowFault(Fault):
    """Calls of long requests are refused with HTTP 400 saying the model's maximum
    context length was exceeded (its context window shrank: a smaller model deployed);
    other calls and health checks are unaffected."""

    kind: ClassVar[FaultKind] = FaultKind.CONTEXT_OVERFLOW
    refusal_rank: ClassVar[int | None] = 2

    def refusal(self, long: bool) -> SimulatedError | None:
        """A 400 ``context_length_exceeded``, for a long request only."""
        if not long:
            return None
        return SimulatedError(
            "this model's maximum context length was exceeded by the request (simulated)",
            status_code=400,
            code="context_length_exceeded",
        )


def _header_seconds(seconds: float) -> str:
    """*seconds* as a header value: ``20`` for a whole number, else the float."""
    value = float(seconds)
    return str(int(value)) if value.is_integer() else repr(value)
