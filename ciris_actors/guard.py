"""Guard: a standalone :class:`~ciris_actors.CircuitBreaker` around calls, as a decorator
for sync and async functions and as a sync and async context manager.

Pure, like the breaker: no trio, no asyncio, no I/O; the time comes from a clock it is
given. Its only state is a ``ContextVar`` of open ``with`` blocks.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import linecache
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import attrs

from ._errors import CircuitBreakerError
from ._types import CircuitState
from .breaker import NO_PERMIT, CircuitBreaker, ThreadSafeCircuitBreaker
from .outcomes import Classifier, classify as classify_error

__all__ = ["Guard"]

P = ParamSpec("P")
R = TypeVar("R")

_CLOSED = CircuitState.CLOSED

#: An open ``with`` block that holds what ``acquire`` admitted it with: the generation
#: read then, and the node of the block it is nested in (``None``: outermost).
_Node = tuple[int, "_Node | None"]


def _callable(*, optional: bool) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not callable(value) and not (optional and value is None):
            what = "a callable or None" if optional else "a callable"
            raise TypeError(f"{attribute.name}: expected {what}, got {type(value).__name__}")

    return check


def _check_breaker(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, CircuitBreaker):
        raise TypeError(f"breaker: expected a CircuitBreaker, got {type(value).__name__}")


def _is_async(fn: Callable[..., object]) -> bool:
    """Whether calling *fn* gives a coroutine: an ``async def`` function (also through
    ``functools.partial`` or ``inspect.markcoroutinefunction``), or an instance whose
    class's ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


@attrs.frozen(eq=False)
class Guard:
    """Run calls through a circuit breaker: admit, record each outcome by its class, and
    refuse when the breaker does.

    As a decorator of plain and ``async def`` functions and methods, and as a context
    manager::

        guard = Guard(breaker)            # clock=time.monotonic

        @guard
        def pay(order): ...

        @guard
        async def fetch(url): ...

        with guard:                       # or: async with guard:
            ...

    A call (or block) is admitted by ``breaker.acquire(clock())``; while the breaker is
    CLOSED, where ``acquire`` admits with no bookkeeping, the guard only reads the state
    (and reads the clock once, when the call ends). When refused it
    raises :class:`~ciris_actors.CircuitBreakerError` with the breaker's name, state and
    next admission time, as ``breaker.check_and_raise`` would; a decorated function of a
    guard given ``fallback=`` returns ``fallback(*args, **kwargs)`` instead (awaited, for
    an ``async def`` function, when it returns an awaitable). A ``with`` block cannot be
    replaced by a value: the context managers always raise.

    An admitted call is recorded at ``clock()`` when it ends:

    * it returns: a success;
    * it raises an :class:`Exception`: what ``classify(error)`` says
      (:func:`ciris_actors.outcomes.classify`: no classifier, or ``None``, is a failure;
      a classifier that raises makes it a failure and notes that on the error), and the
      error propagates unchanged;
    * it raises any other :class:`BaseException` (``trio.Cancelled``,
      ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``GeneratorExit``,
      ``SystemExit``): nothing is recorded and its half-open permit, if any, is returned.
      Cancellation from outside is not the provider's fault (the registry's ``lease``
      has the same rule).

    A call admitted in HALF_OPEN records its outcome with the breaker ``generation``
    read at admission, so an outcome that arrives after a state change never returns a
    permit another call holds; a call admitted in CLOSED holds no permit and records
    with :data:`~ciris_actors.breaker.NO_PERMIT`. A ``with`` block admitted with a permit
    keeps its generation on a stack in a ``ContextVar`` of the guard (``__exit__`` is not
    told which entry it ends), so nested blocks and blocks in concurrent threads and
    trio or asyncio tasks each get their own (docs/semantics.md, 2.12, says why that is
    exact, and the one caveat: generators). The guard sets no deadline (put
    ``trio.fail_after`` inside the call for a timeout to count as a failure), and
    ``async with guard`` does not checkpoint.

    With a breaker made with ``thread_safe=True`` a guard may be used from many threads at
    once; with a plain one, from one thread at a time, like the breaker.

    Args:
      breaker: the breaker to run calls through.
      clock: the current time in seconds, a callable with no argument
        (``time.monotonic``; ``trio.current_time`` under trio; a fake clock in tests),
        the same clock as every other call on *breaker* uses.
      classify: what an :class:`Exception` from a call means (``None``: a failure).
      fallback: called with a refused call's arguments, in place of raising, by
        decorated functions.

    Raises:
      TypeError: *breaker* is not a ``CircuitBreaker``, or *clock*, *classify* or
        *fallback* is not callable; the message names the argument.
    """

    breaker: CircuitBreaker = attrs.field(validator=_check_breaker)
    clock: Callable[[], float] = attrs.field(
        default=time.monotonic, validator=_callable(optional=False)
    )
    classify: Classifier | None = attrs.field(default=None, validator=_callable(optional=True))
    fallback: Callable[..., Any] | None = attrs.field(
        default=None, kw_only=True, validator=_callable(optional=True)
    )
    _stack: contextvars.ContextVar[_Node | None] = attrs.field(init=False, repr=False)
    #: The state in which admission skips ``acquire``, and the one in which a success is
    #: recorded without calling ``record_success``: CLOSED, or ``None`` (never) when the
    #: breaker's class overrides that method (a thread-safe breaker's ``record_success``
    #: takes its lock, so it is always called).
    _closed: CircuitState | None = attrs.field(init=False, repr=False)
    _inline: CircuitState | None = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        kind = type(self.breaker)
        plain_acquire = kind.acquire in (CircuitBreaker.acquire, ThreadSafeCircuitBreaker.acquire)
        plain_success = kind.record_success is CircuitBreaker.record_success
        stack: contextvars.ContextVar[_Node | None] = contextvars.ContextVar(
            f"ciris_actors.Guard({self.breaker.name!r})", default=None
        )
        object.__setattr__(self, "_stack", stack)
        object.__setattr__(self, "_closed", _CLOSED if plain_acquire else None)
        object.__setattr__(self, "_inline", _CLOSED if plain_success else None)

    # -- decorator ------------------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate *fn*, a plain or an ``async def`` function, to run through the guard.

        The wrapper keeps *fn*'s name, docstring and signature (``functools.wraps``), and
        is an ``async def`` function when *fn* is one. A plain function is recorded when
        it returns: one that returns an awaitable is recorded before that is awaited.

        Raises:
          TypeError: *fn* is not callable.
        """
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        wrapper = self._wrapper(fn, is_async=_is_async(fn))
        return cast(Callable[P, R], functools.wraps(fn)(wrapper))

    def _wrapper(self, fn: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
        # The wrapper is generated with fn's own parameters when fn is a plain function,
        # so that a call neither packs nor unpacks *args and **kwargs (that was half the
        # cost of a guarded call); any other callable gets (*args, **kwargs).
        params, forward, defaults = _parameters(fn)
        source = _TEMPLATE.format(
            params=params,
            forward=forward,
            async_="async " if is_async else "",
            await_="await " if is_async else "",
        )
        filename = f"<ciris_actors.Guard wrapper {next(_wrappers)}>"
        namespace: dict[str, Any] = dict(defaults)
        exec(compile(source, filename, "exec"), namespace)
        # Tracebacks through the wrapper show its lines, as attrs does for its methods.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        factory: Callable[..., Callable[..., Any]] = namespace["make"]
        slow = self._slow_async_call if is_async else self._slow_call
        return factory(
            fn,
            self.breaker,
            self.clock,
            self._closed,
            self._inline,
            NO_PERMIT,
            self._failed,
            functools.partial(slow, fn),
        )

    def _slow_call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """A decorated call when the breaker was not CLOSED: admitted by ``acquire``."""
        generation = self._admitted()
        if generation is None:
            if self.fallback is not None:
                return self.fallback(*args, **kwargs)
            raise self._refusal()
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            self._failed(error, generation)
            raise
        except BaseException:
            self.breaker.release(generation)
            raise
        self._succeeded(generation)
        return result

    async def _slow_async_call(
        self, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        """As :meth:`_slow_call`, for an ``async def`` function (and an awaitable that
        the fallback returns is awaited)."""
        generation = self._admitted()
        if generation is None:
            if self.fallback is None:
                raise self._refusal()
            result = self.fallback(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        try:
            result = await fn(*args, **kwargs)
        except Exception as error:
            self._failed(error, generation)
            raise
        except BaseException:
            self.breaker.release(generation)
            raise
        self._succeeded(generation)
        return result

    # -- context managers -----------------------------------------------------------------

    def __enter__(self) -> None:
        """Admit the block, or raise :class:`~ciris_actors.CircuitBreakerError`."""
        if self.breaker._state is self._closed:
            return  # no permit: nothing to remember
        generation = self._admitted()
        if generation is None:
            raise self._refusal()
        stack = self._stack
        stack.set((generation, stack.get()))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record how the block ended; its exception, if any, propagates."""
        stack = self._stack
        node = stack.get()
        if node is None:
            if error is None:  # the fast path: admitted in CLOSED, no permit
                breaker = self.breaker
                now = self.clock()
                if breaker._state is self._inline and breaker.config.failure_rate_threshold is None:
                    # record_success(now) in CLOSED, as the decorator's template does
                    breaker._last_time = now
                    breaker.total_successes += 1
                    breaker._failures = 0
                else:
                    breaker.record_success(now, NO_PERMIT)
                return
            generation = NO_PERMIT
        else:
            generation, parent = node
            stack.set(parent)
        if error is None:
            self._succeeded(generation)
        elif isinstance(error, Exception):
            self._failed(error, generation)
        else:
            self.breaker.release(generation)

    async def __aenter__(self) -> None:
        """As ``__enter__`` (synchronous bookkeeping only: no checkpoint)."""
        if self.breaker._state is not self._closed:  # CLOSED: nothing to do
            self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """As ``__exit__``."""
        self.__exit__(exc_type, error, traceback)

    # -- the steps ------------------------------------------------------------------------

    def _admitted(self) -> int | None:
        """Ask the breaker to admit a call now: the generation to record its outcome
        with, or ``None`` when it refuses."""
        breaker = self.breaker
        now = self.clock()
        lock = breaker._lock
        if lock is None:
            return breaker.generation if breaker.acquire(now) else None
        # No other thread may change the state between acquire and reading the
        # generation, or this call could carry the generation of a later period.
        with lock:
            return breaker.generation if breaker.acquire(now) else None

    def _refusal(self) -> CircuitBreakerError:
        """The error for a refused call, as ``check_and_raise`` makes it."""
        breaker = self.breaker
        lock = breaker._lock
        if lock is None:
            return CircuitBreakerError(
                breaker.name, breaker.state, breaker.next_attempt_time, breaker.disabled
            )
        with lock:
            return CircuitBreakerError(
                breaker.name, breaker.state, breaker.next_attempt_time, breaker.disabled
            )

    def _succeeded(self, generation: int) -> None:
        """Record a success now."""
        breaker = self.breaker
        try:
            now = self.clock()
        except BaseException:
            breaker.release(generation)  # a clock that fails must not keep the permit
            raise
        breaker.record_success(now, generation)

    def _failed(self, error: Exception, generation: int) -> None:
        """Record *error* now, as its class says."""
        breaker = self.breaker
        try:
            error_class = classify_error(error, self.classify)
            now = self.clock()
        except BaseException:
            breaker.release(generation)
            raise
        breaker.record_error(now, error_class, generation)


#: The decorator's wrapper, sync or async. ``make`` closes over what a call needs;
#: ``{params}`` are the function's parameters and ``{forward}`` passes them on. Names
#: begin with ``_guard_`` so that no parameter can shadow them (see ``_parameters``).
_TEMPLATE = """\
def make(_guard_fn, _guard_breaker, _guard_clock, _guard_closed, _guard_inline,
         _guard_no_permit, _guard_failed, _guard_slow):
    {async_}def guarded({params}):
        if _guard_breaker._state is _guard_closed:
            try:
                _guard_result = {await_}_guard_fn({forward})
            except Exception as _guard_error:
                _guard_failed(_guard_error, _guard_no_permit)
                raise
            _guard_now = _guard_clock()
            if (
                _guard_breaker._state is _guard_inline
                and _guard_breaker.config.failure_rate_threshold is None
            ):
                # record_success(now) in CLOSED with no failure-rate window, without the call
                _guard_breaker._last_time = _guard_now
                _guard_breaker.total_successes += 1
                _guard_breaker._failures = 0
            else:
                _guard_breaker.record_success(_guard_now, _guard_no_permit)
            return _guard_result
        return {await_}_guard_slow({forward})
    return guarded
"""

#: Names the template's ``guarded`` reads besides its own ``_guard_`` ones.
_TEMPLATE_NAMES = frozenset({"Exception"})

_wrappers = itertools.count(1)


def _parameters(fn: Callable[..., Any]) -> tuple[str, str, dict[str, object]]:
    """*fn*'s parameter list as source, the arguments that pass each parameter on, and
    the names its defaults are bound to: for a plain Python function, its own; for
    anything else, ``*args, **kwargs``.

    A default is passed on as the very object *fn* would have used (the one it had when
    decorated: a later change to its ``__defaults__`` does not reach the wrapper).
    """
    generic: tuple[str, str, dict[str, object]] = ("*args, **kwargs", "*args, **kwargs", {})
    if not inspect.isfunction(fn) or getattr(fn, "__signature__", None) is not None:
        return generic
    parameters = list(inspect.signature(fn, follow_wrapped=False).parameters.values())
    params: list[str] = []
    forward: list[str] = []
    defaults: dict[str, object] = {}
    starred = False
    for index, parameter in enumerate(parameters):
        name = parameter.name
        if name.startswith("_guard_") or name in _TEMPLATE_NAMES or not name.isidentifier():
            return generic
        kind = parameter.kind
        text = name
        if parameter.default is not parameter.empty:
            default = f"_guard_default_{index}"
            defaults[default] = parameter.default
            text = f"{name}={default}"
        if kind is parameter.VAR_POSITIONAL:
            starred = True
            params.append(f"*{name}")
            forward.append(f"*{name}")
        elif kind is parameter.VAR_KEYWORD:
            params.append(f"**{name}")
            forward.append(f"**{name}")
        elif kind is parameter.KEYWORD_ONLY:
            if not starred:
                starred = True
                params.append("*")
            params.append(text)
            forward.append(f"{name}={name}")
        else:
            params.append(text)
            forward.append(name)
            following = parameters[index + 1].kind if index + 1 < len(parameters) else None
            if kind is parameter.POSITIONAL_ONLY and following is not kind:
                params.append("/")
    return ", ".join(params), ", ".join(forward), defaults
