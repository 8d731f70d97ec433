"""The provider actor: runs one provider's lifecycle and restarts it when it crashes.

Lifecycle, all optional and duck-typed: the instance's async context manager, or
``start()`` then ``run()`` then ``aclose()``. A crash in ``start``/``run`` is judged by the
restart policy; ``aclose`` (or ``__aexit__``) runs after every incarnation, shielded, under
the registry's ``close_timeout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .._errors import RegistryError
from .._lifecycle import is_async_context_manager, lifecycle_method, needs_supervision
from .._types import ActorStatus
from ..events import ActorCrashed, ActorFailed, ActorRestarted
from .breaker_actor import breaker_actor
from .messages import BreakerMessage

if TYPE_CHECKING:
    from .record import ProviderRecord
    from .supervisor import RegistrySupervisor

__all__ = ["provider_actor"]


async def provider_actor(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    """Supervise *record* until it is unregistered, FAILED, or the registry closes."""
    try:
        with record.cancel_scope:
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
        sup.closed(record)


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
            with _closing(sup) as closing:
                try:
                    await instance.__aexit__(type(exc), exc, exc.__traceback__)
                except Exception as close_error:
                    _note_close_error(record, "__aexit__", close_error)
            _note_close_overrun(sup, record, "__aexit__", closing)
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
            with _closing(sup) as closing:
                try:
                    await aclose()
                except Exception as close_error:
                    _note_close_error(record, "aclose", close_error)
            _note_close_overrun(sup, record, "aclose", closing)


def _note_close_error(record: ProviderRecord, hook: str, error: Exception) -> None:
    """Keep a close error beside the crash that led to the close, if there was one."""
    _note_close_problem(record, f"{hook} raised {type(error).__name__}: {error}")


def _note_close_overrun(
    sup: RegistrySupervisor, record: ProviderRecord, hook: str, closing: trio.CancelScope
) -> None:
    if closing.cancelled_caught:
        _note_close_problem(record, f"{hook} did not return within {sup.close_timeout:g}s")


def _note_close_problem(record: ProviderRecord, message: str) -> None:
    record.close_error = message
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
