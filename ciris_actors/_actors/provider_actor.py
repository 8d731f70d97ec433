"""The provider actor: runs one provider instance's lifecycle, restarting it when it
crashes, for every registration of that instance at once.

Lifecycle, all optional and duck-typed: the instance's async context manager, or
``start()`` then ``run()`` then ``aclose()``. A crash in ``start``/``run`` is judged by the
restart policy; ``aclose`` (or ``__aexit__``) runs after every incarnation, shielded, under
the registry's ``close_timeout``. An instance with none of these has no provider actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .._errors import RegistryError
from .._lifecycle import is_async_context_manager, lifecycle_method
from .._types import ActorStatus
from ..events import ActorCrashed, ActorFailed, ActorRestarted
from .messages import BreakerMessage

if TYPE_CHECKING:
    from .record import Lifecycle
    from .supervisor import RegistrySupervisor

__all__ = ["provider_actor"]


async def provider_actor(sup: RegistrySupervisor, life: Lifecycle) -> None:
    """Supervise *life* until its last registration goes, it is FAILED, or the registry
    closes."""
    assert life.cancel_scope is not None
    assert life.done is not None
    try:
        with life.cancel_scope:
            await _supervise(sup, life)
    finally:
        if life.status is not ActorStatus.FAILED:
            sup.set_status(life, ActorStatus.STOPPED)
        life.done.set()
        sup.lifecycle_closed(life)


async def _supervise(sup: RegistrySupervisor, life: Lifecycle) -> None:
    while True:
        try:
            await _incarnation(sup, life)
        except (KeyboardInterrupt, SystemExit) as exc:
            # Not a crash to restart from: the process is being asked to stop. The
            # registry stops everything and raises it bare, as trio would.
            sup.escalate(exc)
            return
        except Exception as exc:
            if life.status is not ActorStatus.RESTARTING:
                _mark_crashed(sup, life, exc)  # start()/__aenter__ raised: nothing to close
            now = trio.current_time()
            delay = life.restart.on_crash(now, sup.rng)
            if delay is None:
                sup.set_status(life, ActorStatus.FAILED)
                for record in sup.current(life):
                    sup.publish(
                        ActorFailed(
                            name=record.name,
                            time=now,
                            restarts=life.restart.restarts,
                            error=life.last_error or "",
                        )
                    )
                if sup.restart_policy.escalate and sup.current(life):
                    error = RegistryError(
                        f"provider {life.name!r} exceeded its restart intensity"
                        f" ({sup.restart_policy.max_restarts} restarts within"
                        f" {sup.restart_policy.within:g}s); last error: {life.last_error}"
                    )
                    error.__cause__ = exc
                    sup.escalate(error)
                return
            await trio.sleep(delay)
            for record in sup.current(life):
                sup.publish(
                    ActorRestarted(
                        name=record.name,
                        time=trio.current_time(),
                        restarts=life.restart.restarts,
                        delay=delay,
                    )
                )
            sup.set_status(life, ActorStatus.STARTING)


def _mark_crashed(sup: RegistrySupervisor, life: Lifecycle, exc: Exception) -> None:
    """Take a crashed provider out of routing at once, before it is closed: a provider
    whose ``run()`` just raised must not be handed out while its ``aclose`` runs."""
    life.last_error = f"{type(exc).__name__}: {exc}"
    sup.set_status(life, ActorStatus.RESTARTING)
    for record in sup.current(life):
        sup.publish(ActorCrashed(name=record.name, time=trio.current_time(), error=life.last_error))


async def _incarnation(sup: RegistrySupervisor, life: Lifecycle) -> None:
    """Run one life of the provider; returns only by raising (crash or cancellation)."""
    instance = life.instance
    if is_async_context_manager(instance):
        await instance.__aenter__()
        try:
            await _serve(sup, life)
        except BaseException as exc:
            if isinstance(exc, Exception):
                _mark_crashed(sup, life, exc)
            with _closing(sup) as closing:
                try:
                    await instance.__aexit__(type(exc), exc, exc.__traceback__)
                except Exception as close_error:
                    _note_close_error(life, "__aexit__", close_error)
            _note_close_overrun(sup, life, "__aexit__", closing)
            raise
        return  # pragma: no cover - _serve never returns normally
    start = lifecycle_method(instance, "start")
    aclose = lifecycle_method(instance, "aclose")
    try:
        if start is not None:
            await start()
        await _serve(sup, life)
    except Exception as exc:
        _mark_crashed(sup, life, exc)
        raise
    finally:
        if aclose is not None:
            with _closing(sup) as closing:
                try:
                    await aclose()
                except Exception as close_error:
                    _note_close_error(life, "aclose", close_error)
            _note_close_overrun(sup, life, "aclose", closing)


def _note_close_error(life: Lifecycle, hook: str, error: Exception) -> None:
    """Keep a close error beside the crash that led to the close, if there was one."""
    _note_close_problem(life, f"{hook} raised {type(error).__name__}: {error}")


def _note_close_overrun(
    sup: RegistrySupervisor, life: Lifecycle, hook: str, closing: trio.CancelScope
) -> None:
    if closing.cancelled_caught:
        _note_close_problem(life, f"{hook} did not return within {sup.close_timeout:g}s")


def _note_close_problem(life: Lifecycle, message: str) -> None:
    life.close_error = message
    crashed = life.status is ActorStatus.RESTARTING and life.last_error
    life.last_error = f"{life.last_error}; then {message}" if crashed else message


def _closing(sup: RegistrySupervisor) -> trio.CancelScope:
    """A shielded scope that still ends after ``close_timeout``."""
    return trio.CancelScope(shield=True, deadline=trio.current_time() + sup.close_timeout)


async def _serve(sup: RegistrySupervisor, life: Lifecycle) -> None:
    sup.set_status(life, ActorStatus.RUNNING)
    lead = life.lead
    if life.has_health_check and lead is not None:
        lead.tell(BreakerMessage.CHECK_NOW)
    run = lifecycle_method(life.instance, "run")
    if run is not None:
        await run()
    # A run() that returns has finished its background work; the provider stays routable
    # until it is unregistered or the registry closes.
    await trio.sleep_forever()
