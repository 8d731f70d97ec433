"""OpenTelemetry traces of ``lease`` and ``call`` (the ``otel`` extra: the API package
only): a span per call or lease, a child span per attempt, skipped candidates as span
events, and the context without a span that the registry's background actors start in.

Nothing here costs anything unless it records. Without opentelemetry-api the facade reads
:data:`installed` and goes on; with the API but no SDK, :func:`tracer` answers ``None``
after a few attribute reads and no span is made. Rules for people: docs/tracing.md.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from importlib import metadata
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._actors.record import OUTCOMES, ProviderRecord
from ._actors.supervisor import RegistrySupervisor, Resolve
from ._errors import Attempt, NoServiceAvailable
from ._inspect import walk
from ._lease import Lease, call_with_failover
from .selection import Member

try:
    from opentelemetry import context as otel_context, trace as otel_trace
except ImportError:
    #: Whether opentelemetry-api can be imported. The facade checks it before anything
    #: else, so without the API a call pays one attribute read.
    installed = False
else:
    installed = True

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "CallTrace",
    "TracedLease",
    "actor_context",
    "call",
    "installed",
    "lease",
    "tracer",
    "tracer_provider_override",
]

T = TypeVar("T")

#: Span names.
CALL_SPAN = "ciris.call"
LEASE_SPAN = "ciris.lease"
ATTEMPT_SPAN = "ciris.attempt"
#: The event for a candidate a resolve passed over.
SKIP_EVENT = "ciris.skip"
#: Attribute names.
HANDLER = "ciris.handler"
SERVICE_TYPE = "ciris.service_type"
PROVIDER = "ciris.provider"
PRIORITY_GROUP = "ciris.priority_group"
ATTEMPT = "ciris.attempt"
OUTCOME = "ciris.outcome"
SKIP_REASON = "ciris.skip.reason"
ERROR_TYPE = "error.type"

#: Outcomes that were the provider's fault: their spans get the ERROR status. An error
#: that was the request's (``ignored``), needed another provider (``rerouted``) or
#: counted as a success keeps the status unset, as a 4xx does on an HTTP server span;
#: its span still names the error.
_FAILED = frozenset({"failure", "rate_limited", "disabled", "timeout"})

#: The tracer provider to use instead of the global one, for tests: the global one can be
#: set once per process. ``None``: the global one.
tracer_provider_override: TracerProvider | None = None

#: The provider :func:`tracer` last saw, and the tracer it made of it (``None``: a
#: provider whose spans would not record, or none at all). One tuple: one global read.
_cache: tuple[object, Tracer | None] = (object(), None)

if not installed or hasattr(otel_trace, "_TRACER_PROVIDER"):

    def tracer() -> Tracer | None:
        """The tracer to make spans with, or ``None`` when they would not record: no
        tracer provider was set (the API alone hands out no-op spans) or a no-op one was.

        Looked at again on every call, so a provider set later is used from the next
        call on; only a change of provider costs more than a few attribute reads.
        """
        provider = tracer_provider_override
        if provider is None:
            # ``trace.get_tracer_provider()`` looks up an environment variable on every
            # call (over a microsecond); once a provider is set it returns this global,
            # read here directly. ``_adopt`` covers the environment variable.
            provider = otel_trace._TRACER_PROVIDER
        cache = _cache
        if provider is cache[0]:
            return cache[1]
        return _adopt(provider)

else:  # pragma: no cover - an API that keeps its global provider elsewhere

    def tracer() -> Tracer | None:
        """:func:`tracer` for an API laid out otherwise: asks it every time."""
        provider = tracer_provider_override
        if provider is None:
            provider = otel_trace.get_tracer_provider()
        cache = _cache
        if provider is cache[0]:
            return cache[1]
        return _adopt(provider)


def _adopt(provider: TracerProvider | None) -> Tracer | None:
    """Remember *provider* and the tracer it gives, for :func:`tracer`."""
    global _cache
    if provider is None and "OTEL_PYTHON_TRACER_PROVIDER" in os.environ:
        # The API loads a provider named in the environment on first use: use it now.
        provider = otel_trace.get_tracer_provider()
    found: Tracer | None = None
    if provider is not None and not isinstance(
        provider, (otel_trace.NoOpTracerProvider, otel_trace.ProxyTracerProvider)
    ):
        found = provider.get_tracer("ciris_actors", _version())
        if isinstance(found, (otel_trace.NoOpTracer, otel_trace.ProxyTracer)):
            found = None  # e.g. an SDK disabled by OTEL_SDK_DISABLED
    _cache = (provider, found)
    return found


@functools.cache
def _version() -> str | None:
    """The package's version, for the tracer's scope (looked up once: it is slow)."""
    try:
        return metadata.version("ciris-actors")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return None


def actor_context() -> contextvars.Context:
    """A copy of the current context whose OpenTelemetry context is empty: what the
    registry's background actors start in (``RegistrySupervisor.actor_context``).

    A provider's ``start()`` or health check that makes spans then starts traces of its
    own rather than joining the trace of whoever registered it. Other context variables
    are kept, as trio would copy them.
    """
    context = contextvars.copy_context()
    context.run(otel_context.attach, otel_context.Context())
    return context


def error_type(error: BaseException) -> str:
    """``error.type`` of *error*: its class's qualified name, with the module unless
    it is a built-in (as the SDK names ``exception.type``)."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _error(span: Span, error: Exception, *, failed: bool, record: bool = True) -> None:
    span.set_attribute(ERROR_TYPE, error_type(error))
    if record:
        span.record_exception(error)
    if failed:
        span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, str(error)))


class CallTrace:
    """The spans of one ``call`` or ``lease``: its own span (a child of the caller's
    current span) and, under it, one span per attempt (:class:`TracedLease`).

    Attributes:
      span: the call's or lease's span.
      recording: whether it records; skip events are built only then.
      attempts: attempts started so far.
      last: the latest attempt, or ``None``.
    """

    __slots__ = (
        "_parent",
        "_sup",
        "_tracer",
        "attempts",
        "handler",
        "last",
        "recording",
        "service_type",
        "span",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        sup: RegistrySupervisor,
        handler: str,
        service_type: str,
    ) -> None:
        span = tracer.start_span(name, attributes={HANDLER: handler, SERVICE_TYPE: service_type})
        self.span = span
        self.recording = span.is_recording()
        #: The attempts' parent: the caller's context with this span in it.
        self._parent: Context = otel_trace.set_span_in_context(span)
        self._tracer = tracer
        self._sup = sup
        self.handler = handler
        self.service_type = service_type
        self.attempts = 0
        self.last: TracedLease | None = None

    def resolve(self, resolve: Resolve) -> Resolve:
        """*resolve*, adding a skip event for every candidate it passes over before the
        one it chooses (not those already tried in this call).

        Only while the span records: the reasons come from the explain walk, taken
        before the resolve (which moves round-robin cursors and takes permits), and
        building them is not for the hot path.
        """
        if not self.recording:
            return resolve
        plans = self._sup.plans
        now = self._sup.now

        def traced(
            handler: str,
            service_type: str,
            required: frozenset[str],
            fallback_to_global: bool,
            exclude: Collection[Member],
            /,
        ) -> ProviderRecord | None:
            rows = walk(plans, handler, service_type, required, fallback_to_global, exclude, now())
            record = resolve(handler, service_type, required, fallback_to_global, exclude)
            if record is not None:
                tried = {member.name for member in exclude}
                for row in rows:
                    if row.name == record.name:
                        break
                    if row.verdict == "skipped" and row.name not in tried:
                        self.skip(row.name, row.reason)
            return record

        return traced

    def skip(self, name: str, reason: str) -> None:
        """Record that the resolve for the next attempt passed over *name*."""
        self.span.add_event(
            SKIP_EVENT, {PROVIDER: name, SKIP_REASON: reason, ATTEMPT: self.attempts + 1}
        )

    def lease(
        self, sup: RegistrySupervisor, record: ProviderRecord, timeout: float | None
    ) -> TracedLease:
        """The lease of the next attempt (``call_with_failover``'s *make_lease*)."""
        return TracedLease(self, sup, record, timeout)

    def end(self, error: BaseException | None) -> None:
        """End the span: what the last attempt came to, and the error the call or lease
        raised, if any.

        ``ciris.outcome`` is the last attempt's outcome; ``cancelled`` when the call was
        cancelled (or interrupted); ``failure`` when no attempt reached a provider.
        """
        span = self.span
        last = self.last
        if error is not None and not isinstance(error, Exception):
            outcome = "cancelled"
        elif last is not None and last.outcome is not None:
            outcome = last.outcome
        else:
            outcome = "failure"
        if last is None:
            span.set_attribute(OUTCOME, outcome)
        else:  # one call: the SDK takes a lock and checks the values at each
            span.set_attributes(
                {
                    PROVIDER: last.name,
                    PRIORITY_GROUP: last.priority_group,
                    ATTEMPT: self.attempts,
                    OUTCOME: outcome,
                }
            )
        if isinstance(error, Exception):
            if isinstance(error, NoServiceAvailable) and self.recording:
                for skipped in error.skipped:
                    self.skip(skipped.name, skipped.reason)
            # The attempt recorded an error the call raised as it was: name it only.
            again = last is not None and error is last.error
            _error(span, error, failed=True, record=not again)
        span.end()


class TracedLease(Lease):
    """A lease that is an attempt of a traced call or lease: a ``ciris.attempt`` span,
    current while the block runs, ended with the outcome the lease recorded."""

    __slots__ = ("_counted", "_span", "_token", "error")

    def __init__(
        self,
        trace: CallTrace,
        sup: RegistrySupervisor,
        record: ProviderRecord,
        timeout: float | None,
    ) -> None:
        super().__init__(sup, record, timeout)
        trace.attempts += 1
        trace.last = self
        self._span = trace._tracer.start_span(
            ATTEMPT_SPAN,
            context=trace._parent,
            attributes={
                HANDLER: trace.handler,
                SERVICE_TYPE: trace.service_type,
                PROVIDER: record.name,
                PRIORITY_GROUP: record.priority_group,
                ATTEMPT: trace.attempts,
            },
        )
        self._token: Token[Context] | None = None
        self._counted: int | None = None
        #: The exception the attempt ended with, or ``None``.
        self.error: BaseException | None = None

    @property
    def name(self) -> str:
        """The provider's name."""
        return self._record.name

    @property
    def priority_group(self) -> int:
        """The provider's priority group."""
        return self._record.priority_group

    @property
    def outcome(self) -> str | None:
        """What the attempt came to (a word of ``OUTCOMES``), or ``None`` before it ended
        or when it never reached the provider (abandoned)."""
        counted = self._counted
        return None if counted is None else OUTCOMES[counted]

    def __enter__(self) -> TracedLease:
        self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        super().__enter__()
        return self

    def _settle(self, exc: BaseException | None, timed_out: bool) -> int | None:
        self._counted = super()._settle(exc, timed_out)
        return self._counted

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            super().__exit__(exc_type, exc, tb)
        except BaseException as raised:  # a timeout's TooSlowError, or exc itself
            self._end(raised)
            raise
        self._end(exc)
        return False

    def _end(self, error: BaseException | None) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
        self.error = error
        span = self._span
        outcome = self.outcome
        if outcome is not None:  # else abandoned: the call never reached the provider
            span.set_attribute(OUTCOME, outcome)
            if isinstance(error, Exception):
                _error(span, error, failed=outcome in _FAILED)
        span.end()


async def call(
    tracer: Tracer,
    sup: RegistrySupervisor,
    resolve: Resolve,
    no_service: Callable[[frozenset[str], list[ProviderRecord], list[Attempt]], NoServiceAvailable],
    handler: str,
    service_type: str,
    required: frozenset[str],
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    max_attempts: int | None,
    wait: float | None,
    hedge_after: float | None = None,
) -> T:
    """``Registry.call`` traced: ``call_with_failover`` inside a ``ciris.call`` span."""
    trace = CallTrace(tracer, CALL_SPAN, sup, handler, service_type)
    try:
        result = await call_with_failover(
            sup,
            trace.resolve(resolve),
            no_service,
            handler,
            service_type,
            required,
            fn,
            args,
            max_attempts,
            wait,
            hedge_after,
            trace.lease,
        )
    except BaseException as error:
        trace.end(error)
        raise
    trace.end(None)
    return result


@contextmanager
def lease(
    tracer: Tracer,
    sup: RegistrySupervisor,
    resolve: Resolve,
    no_service: Callable[[], NoServiceAvailable],
    handler: str,
    service_type: str,
    required: frozenset[str],
    timeout: float | None,
) -> Iterator[Any]:
    """``Registry.lease``'s resolve and lease, traced: a ``ciris.lease`` span around one
    attempt; yields the provider instance."""
    trace = CallTrace(tracer, LEASE_SPAN, sup, handler, service_type)
    try:
        record = trace.resolve(resolve)(handler, service_type, required, True, ())
        if record is None:
            raise no_service()
        with trace.lease(sup, record, timeout) as held:
            yield held.instance
    except BaseException as error:
        trace.end(error)
        raise
    trace.end(None)
