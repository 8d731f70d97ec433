"""The provider actor: runs one provider's lifecycle and restarts it when it crashes.

Lifecycle, all optional and duck-typed: the instance's async context manager, or
``start()`` then ``run()`` then ``aclose()``. A crash in ``start``/``run`` is judged by the
restart policy; ``aclose`` (or ``__aexit__``) runs after every incarnation, shielded, under
the registry's ``close_timeout``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import RegistryError
from ..events import ActorCrashed, ActorFailed, ActorRestarted
from ..selection import ActorStatus
from .breaker_actor import breaker_actor
from .messages import BreakerMessage

if TYPE_CHECKING:
    from .supervisor import ProviderRecord, RegistrySupervisor

__all__ = ["has_lifecycle", "lifecycle_method", "needs_supervision", "provider_actor"]


def lifecycle_method(instance: object, name: str) -> Callable[[], Awaitable[Any]] | None:
    """Return ``instance.<name>`` if it is a coroutine function, else ``None``.

    Only coroutine functions count, so an unrelated synchronous ``start`` (a thread's, a
    mock's) is never mistaken for a lifecycle hook.
    """
    method = getattr(instance, name, None)
    if method is not None and inspect.iscoroutinefunction(method):
        return method  # type: ignore[no-any-return]
    return None


def is_async_context_manager(instance: object) -> bool:
    """Whether *instance*'s class defines ``__aenter__`` and ``__aexit__``."""
    cls = type(instance)
    return hasattr(cls, "__aenter__") and hasattr(cls, "__aexit__")


def has_lifecycle(instance: object) -> bool:
    """Whether *instance* must be started before it is routable."""
    return is_async_context_manager(instance) or lifecycle_method(instance, "start") is not None


def needs_supervision(instance: object) -> bool:
    """Whether *instance* has anything for a provider actor to start, run or close."""
    return is_async_context_manager(instance) or any(
        lifecycle_method(instance, hook) is not None for hook in ("start", "run", "aclose")
    )


async def provider_actor(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    """Supervise *record* until it is unregistered, FAILED, or the registry closes."""
    try:
        with record.scope:
            if needs_supervision(record.instance):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        breaker_actor,
                        sup,
                        record,
                        nursery,
                        name=f"ciris_actors.breaker:{record.name}",
                    )
                    await _supervise(sup, record)
                    nursery.cancel_scope.cancel()
            else:
                # Nothing to start, run or close: the breaker loop is all there is to do,
                # so it runs in this task instead of a child (half the memory per provider).
                if record.has_health_check:
                    record.tell(BreakerMessage.CHECK_NOW)
                await breaker_actor(sup, record, sup.nursery)
    finally:
        if record.status is not ActorStatus.FAILED:
            sup.set_status(record, ActorStatus.STOPPED)
        record.done.set()


async def _supervise(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    while True:
        try:
            await _incarnation(sup, record)
        except (KeyboardInterrupt, SystemExit) as exc:
            # Not a crash to restart from: the process is being asked to stop. The
            # registry stops everything and raises it bare, as trio would.
            sup.escalate(exc)
            return
        except Exception as exc:
            if record.status is not ActorStatus.RESTARTING:
                _mark_crashed(sup, record, exc)  # start()/__aenter__ raised: nothing to close
            now = trio.current_time()
            delay = record.restart.on_crash(now, sup.rng)
            current = sup.is_current(record)
            if delay is None:
                sup.set_status(record, ActorStatus.FAILED)
                if current:
                    sup.publish(
                        ActorFailed(
                            name=record.name,
                            time=now,
                            restarts=record.restart.restarts,
                            error=record.last_error or "",
                        )
                    )
                if sup.restart_policy.escalate and current:
                    error = RegistryError(
                        f"provider {record.name!r} exceeded its restart intensity"
                        f" ({sup.restart_policy.max_restarts} restarts within"
                        f" {sup.restart_policy.within:g}s); last error: {record.last_error}"
                    )
                    error.__cause__ = exc
                    sup.escalate(error)
                return
            await trio.sleep(delay)
            if sup.is_current(record):
                sup.publish(
                    ActorRestarted(
                        name=record.name,
                        time=trio.current_time(),
                        restarts=record.restart.restarts,
                        delay=delay,
                    )
                )
            sup.set_status(record, ActorStatus.STARTING)


def _mark_crashed(sup: RegistrySupervisor, record: ProviderRecord, exc: Exception) -> None:
    """Take a crashed provider out of routing at once, before it is closed: a provider
    whose ``run()`` just raised must not be handed out while its ``aclose`` runs."""
    record.last_error = f"{type(exc).__name__}: {exc}"
    sup.set_status(record, ActorStatus.RESTARTING)
    if sup.is_current(record):
        sup.publish(
            ActorCrashed(name=record.name, time=trio.current_time(), error=record.last_error)
        )


async def _incarnation(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    """Run one life of the provider; returns only by raising (crash or cancellation)."""
    instance = record.instance
    if is_async_context_manager(instance):
        await instance.__aenter__()
        try:
            await _serve(sup, record)
        except BaseException as exc:
            if isinstance(exc, Exception):
                _mark_crashed(sup, record, exc)
            with _closing(sup):
                try:
                    await instance.__aexit__(type(exc), exc, exc.__traceback__)
                except Exception as close_error:
                    _note_close_error(record, "__aexit__", close_error)
            raise
        return  # pragma: no cover - _serve never returns normally
    start = lifecycle_method(instance, "start")
    aclose = lifecycle_method(instance, "aclose")
    try:
        if start is not None:
            await start()
        await _serve(sup, record)
    except Exception as exc:
        _mark_crashed(sup, record, exc)
        raise
    finally:
        if aclose is not None:
            with _closing(sup):
                try:
                    await aclose()
                except Exception as close_error:
                    _note_close_error(record, "aclose", close_error)


def _note_close_error(record: ProviderRecord, hook: str, error: Exception) -> None:
    """Keep a close error beside the crash that led to the close, if there was one."""
    message = f"{hook} raised {type(error).__name__}: {error}"
    crashed = record.status is ActorStatus.RESTARTING and record.last_error
    record.last_error = f"{record.last_error}; then {message}" if crashed else message


def _closing(sup: RegistrySupervisor) -> trio.CancelScope:
    """A shielded scope that still ends after ``close_timeout``."""
    return trio.CancelScope(shield=True, deadline=trio.current_time() + sup.close_timeout)


async def _serve(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    sup.set_status(record, ActorStatus.RUNNING)
    if record.has_health_check:
        record.tell(BreakerMessage.CHECK_NOW)
    run = lifecycle_method(record.instance, "run")
    if run is not None:
        await run()
    # A run() that returns has finished its background work; the provider stays routable
    # until it is unregistered or the registry closes.
    await trio.sleep_forever()
