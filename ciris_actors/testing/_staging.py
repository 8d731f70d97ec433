"""Staging: registering scripted providers and driving a registry, through its public
methods and the providers' own behaviour on virtual time, into the breaker, actor and
health states a list of :class:`ProviderSpec` asks for, and checking it got there.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Literal, get_args

import attrs
import trio
import trio.testing

from .._nursery import unwrap_single_exception
from .._types import ActorStatus, CircuitState, Priority, SelectionStrategy
from ..breaker import CircuitBreakerConfig
from ..events import (
    ActorCrashed,
    ActorFailed,
    BreakerTransition,
    EventsDropped,
    HealthChanged,
    RegistryEvent,
)
from ..registry import Registry, open_registry
from ..restart import RestartPolicy

__all__ = [
    "ACTOR_STATES",
    "BREAKER_STATES",
    "HEALTH_STATES",
    "STAGE_HOLD",
    "STAGING_BREAKER",
    "STAGING_RESTART_POLICY",
    "STAGING_TIMEOUT",
    "ActorState",
    "BreakerState",
    "HealthState",
    "ProviderSpec",
    "StagedProvider",
    "StagingError",
    "stage",
    "staging_registry",
]

#: A breaker state to stage: ``half_open_full`` is HALF_OPEN with every probe permit
#: taken (``half_open_max_calls`` of them), so it admits nothing more.
BreakerState = Literal["closed", "open", "half_open", "half_open_full"]
#: An actor status to stage.
ActorState = Literal["running", "starting", "restarting", "failed"]
#: A health to stage: the last check passed, failed, or none has finished since the
#: provider's last (re)start (always so without ``is_healthy``).
HealthState = Literal["healthy", "unhealthy", "unknown"]

BREAKER_STATES: tuple[BreakerState, ...] = get_args(BreakerState)
ACTOR_STATES: tuple[ActorState, ...] = get_args(ActorState)
HEALTH_STATES: tuple[HealthState, ...] = get_args(HealthState)

#: Virtual seconds every staged state lasts, at least, after :func:`stage` returns: open
#: breakers stay open, restarting providers wait, probe permits and pending health
#: checks stay out that long. A test that lets more time pass sees the registry move on.
STAGE_HOLD = 3600.0
#: The ``timeout_duration`` staging needs (for a pending health check and for probe
#: permits to outlast staging by :data:`STAGE_HOLD`); the breaker of
#: :func:`staging_registry` has it.
STAGING_TIMEOUT = 4 * STAGE_HOLD
#: The restart policy of :func:`staging_registry`: one restart, after
#: :data:`STAGE_HOLD` seconds (so a crashed provider stays ``restarting`` that long); a
#: second crash within the window is final (``failed``).
STAGING_RESTART_POLICY = RestartPolicy(
    max_restarts=1, within=4 * STAGE_HOLD, initial=STAGE_HOLD, maximum=STAGE_HOLD, jitter=0.0
)
#: The default breaker of :func:`staging_registry`: the defaults, with
#: :data:`STAGING_TIMEOUT` as ``timeout_duration``.
STAGING_BREAKER = CircuitBreakerConfig(timeout_duration=STAGING_TIMEOUT)

#: How long a ``half_open`` provider is forced open before its breaker actor moves it on.
_BRIEFLY = 1.0
#: How long staging waits for one phase before it says what did not happen.
_PATIENCE = 2 * STAGE_HOLD

_HEALTH_VALUES: dict[HealthState, bool | None] = {
    "healthy": True,
    "unhealthy": False,
    "unknown": None,
}


class StagingError(AssertionError):
    """:func:`stage` could not put the registry into the states asked for."""


def _one_of(choices: tuple[str, ...]) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in choices:
            raise ValueError(
                f"{attribute.name}: expected one of {', '.join(choices)}, got {value!r}"
            )

    return check


def _capabilities(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError("capabilities: expected an iterable of strings, not a bare string")
    return frozenset(value)


@attrs.frozen(kw_only=True)
class ProviderSpec:
    """One provider for :func:`stage` to register, and the state to put it in.

    Only states the registry can really be in are accepted: without ``is_healthy``
    health is always unknown; a provider that is not running has unknown health (a
    (re)start forgets the last check) and must have a lifecycle to be starting,
    restarting or failed; ``half_open_full`` needs a routable provider, since its probe
    permits are taken by resolves.

    Attributes:
      handler: the handler it serves (``"*"``: every handler).
      service_type: the service type it provides.
      priority: its priority inside its group.
      priority_group: its group (lower groups are tried first).
      strategy: the strategy it asks for its group.
      capabilities: what it offers (:func:`stage` adds ``staged:<index>``).
      breaker: its breaker's state.
      actor: its actor's status.
      health: its last health check's result.
      has_health_check: whether it has an async ``is_healthy``.
      supervised: whether it has ``start``, ``run`` and ``aclose`` (a provider actor
        runs them); a plain provider has none and is running from registration.

    Raises:
      ValueError: a state the registry cannot be in, or an unknown state name.
    """

    handler: str = "*"
    service_type: str = "llm"
    priority: Priority = attrs.field(
        default=Priority.NORMAL, validator=attrs.validators.instance_of(Priority)
    )
    priority_group: int = 0
    strategy: SelectionStrategy = attrs.field(
        default=SelectionStrategy.FALLBACK,
        validator=attrs.validators.instance_of(SelectionStrategy),
    )
    capabilities: frozenset[str] = attrs.field(default=frozenset(), converter=_capabilities)
    breaker: BreakerState = attrs.field(default="closed", validator=_one_of(BREAKER_STATES))
    actor: ActorState = attrs.field(default="running", validator=_one_of(ACTOR_STATES))
    health: HealthState = attrs.field(default="unknown", validator=_one_of(HEALTH_STATES))
    has_health_check: bool = False
    supervised: bool = True

    def __attrs_post_init__(self) -> None:
        problem = self.impossibility()
        if problem:
            raise ValueError(f"the registry cannot be in this state: {problem}")

    def impossibility(self) -> str | None:
        """Why the registry can never be in this state, or ``None`` when it can."""
        if self.health != "unknown" and not self.has_health_check:
            return f"health {self.health} without is_healthy (it stays unknown)"
        if self.actor != "running" and self.health != "unknown":
            return f"health {self.health} while {self.actor} (a (re)start forgets the last check)"
        if self.actor != "running" and not self.supervised:
            return f"{self.actor} without start/run/aclose (a plain provider is always running)"
        if self.breaker == "half_open_full" and not self.routable:
            return "half_open_full on a provider no resolve can reach to take the permits"
        return None

    @property
    def routable(self) -> bool:
        """Whether its actor and health let a resolve consider it."""
        if self.actor != "running":
            return False
        return self.health == "healthy" or (self.health == "unknown" and not self.has_health_check)

    @property
    def available(self) -> bool:
        """Whether a resolve that requires none of its capabilities would admit it now."""
        return self.routable and self.breaker in ("closed", "half_open")

    @property
    def actor_status(self) -> ActorStatus:
        """The :class:`ActorStatus` it is staged in."""
        return ActorStatus(self.actor)

    @property
    def health_value(self) -> bool | None:
        """Its health as :attr:`ProviderView.health` shows it."""
        return _HEALTH_VALUES[self.health]


class StagedProvider:
    """The provider :func:`stage` registers for a spec; resolves hand it out.

    Its hooks do what its spec needs: ``start`` never returns for ``starting``; ``run``
    raises when told (``restarting``) or every time (``failed``); ``is_healthy`` answers
    ``True`` or ``False``, or never (``unknown``). Plain specs get a provider without
    ``start``, ``run`` and ``aclose``; specs without ``is_healthy`` one without it.

    Attributes:
      name: its registered name (``staged-<index>``, or the prefix given to
        :func:`stage`).
      index: its position in the list given to :func:`stage`.
      spec: the state it was staged in.
    """

    def __init__(self, name: str, index: int, spec: ProviderSpec) -> None:
        self.name = name
        self.index = index
        self.spec = spec
        #: Incarnations that reached ``run()``, i.e. were RUNNING (semantics, section 4).
        self._runs = 0
        #: Set by stage() to hear when run() is entered.
        self._entered: Callable[[], None] = _nothing
        #: Set by stage(): the ``restarting`` provider's first run() raises.
        self._crash = trio.Event()

    def __repr__(self) -> str:
        return f"<StagedProvider {self.name}: {_describe(self.spec)}>"


class _HealthCheck:
    spec: ProviderSpec

    async def is_healthy(self) -> bool:
        spec = self.spec
        if spec.actor == "running" and spec.health == "unknown":
            await trio.sleep_forever()  # pending until timeout_duration
        await trio.lowlevel.checkpoint()
        return spec.health != "unhealthy"


class _Lifecycle:
    spec: ProviderSpec
    _runs: int
    _entered: Callable[[], None]
    _crash: trio.Event

    async def start(self) -> None:
        if self.spec.actor == "starting":
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()

    async def run(self) -> None:
        # The registry calls run() once the provider is RUNNING (semantics, section 4).
        self._runs += 1
        self._entered()
        if self.spec.actor == "failed":
            await trio.lowlevel.checkpoint()
            raise RuntimeError("staged crash")
        if self.spec.actor == "restarting" and self._runs == 1:
            await self._crash.wait()
            raise RuntimeError("staged crash")
        await trio.sleep_forever()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class _Plain(StagedProvider):
    pass


class _PlainChecked(_HealthCheck, StagedProvider):
    pass


class _Supervised(_Lifecycle, StagedProvider):
    pass


class _SupervisedChecked(_HealthCheck, _Lifecycle, StagedProvider):
    pass


def _nothing() -> None:
    pass


def _provider(name: str, index: int, spec: ProviderSpec) -> StagedProvider:
    kind: type[StagedProvider]
    if spec.supervised:
        kind = _SupervisedChecked if spec.has_health_check else _Supervised
    else:
        kind = _PlainChecked if spec.has_health_check else _Plain
    return kind(name, index, spec)


@asynccontextmanager
async def staging_registry(
    required_services: Iterable[str] = (),
    *,
    default_breaker: CircuitBreakerConfig | None = None,
    health_check_interval: float | None = None,
    allow_mock_services: bool = False,
    close_timeout: float = 5.0,
    seed: int | None = None,
) -> AsyncIterator[Registry]:
    """:func:`~ciris_actors.open_registry` with the settings :func:`stage` needs.

    The restart policy is :data:`STAGING_RESTART_POLICY`; the other arguments are
    ``open_registry``'s, with two differences: periodic health checks are off by
    default, and the default breaker is :data:`STAGING_BREAKER`.

    Args:
      required_services: as for ``open_registry``.
      default_breaker: the providers' breaker; its ``timeout_duration`` must be at least
        :data:`STAGING_TIMEOUT` (``attrs.evolve(config, timeout_duration=STAGING_TIMEOUT)``).
      health_check_interval: as for ``open_registry`` (default ``None``: only the first
        check after each start).
      allow_mock_services: as for ``open_registry``.
      close_timeout: as for ``open_registry``.
      seed: as for ``open_registry``.

    Raises:
      ValueError: *default_breaker*'s ``timeout_duration`` is too short to stage with.
    """
    breaker = STAGING_BREAKER if default_breaker is None else default_breaker
    if isinstance(breaker, CircuitBreakerConfig) and breaker.timeout_duration < STAGING_TIMEOUT:
        raise ValueError(
            f"default_breaker: timeout_duration must be >= {STAGING_TIMEOUT:g} to stage"
            f" pending health checks and full probe quotas, got {breaker.timeout_duration:g}"
        )
    async with open_registry(
        required_services,
        health_check_interval=health_check_interval,
        restart_policy=STAGING_RESTART_POLICY,
        default_breaker=breaker,
        allow_mock_services=allow_mock_services,
        close_timeout=close_timeout,
        seed=seed,
    ) as registry:
        yield registry


async def stage(
    registry: Registry, specs: Sequence[ProviderSpec], *, prefix: str = "staged"
) -> list[str]:
    """Register a :class:`StagedProvider` per spec and drive the registry into the
    states they ask for, then check with :meth:`Registry.view` that it is there.

    Providers are registered in the order of *specs*, named ``<prefix>-<index>``, each
    offering its spec's capabilities plus ``<prefix>:<index>``. Everything happens
    through public methods and the providers' behaviour, on trio's virtual clock (a
    ``MockClock``; one that does not autojump is made to while staging): failed
    providers crash twice (this moves the clock by :data:`STAGE_HOLD`); ``half_open``
    breakers are forced open for a second, then their breaker actor moves them on;
    ``half_open_full`` ones then have every probe permit taken by a resolve that
    requires ``<prefix>:<index>`` (so a round-robin cursor may have moved);
    ``restarting`` providers crash last and ``open`` breakers are forced open last, for
    :data:`STAGE_HOLD`. Every state lasts at least :data:`STAGE_HOLD` virtual seconds
    from when this returns.

    Open the registry with :func:`staging_registry` (or with its restart policy and a
    ``timeout_duration`` of at least :data:`STAGING_TIMEOUT`). Attach resolve observers
    after staging if they must not count its resolves.

    Args:
      registry: an open registry, on a ``MockClock``.
      specs: the providers and their states.
      prefix: the start of the names and of the targeting capability; another prefix
        lets a test stage twice on one registry.

    Returns:
      The registered names, in the order of *specs*.

    Raises:
      StagingError: a provider did not reach its state (the message says which and how
        it stands), or the clock is not a ``MockClock``.
      DuplicateProviderError: a name is taken already (stage twice with another prefix).
    """
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise StagingError(
            "stage() runs on trio's virtual clock: trio.run(..., clock=MockClock("
            "autojump_threshold=0)), or pytest-trio's autojump_clock fixture"
        )
    threshold = clock.autojump_threshold
    if math.isinf(threshold):
        clock.autojump_threshold = 0
    try:
        with unwrap_single_exception():
            async with (
                registry.events(
                    max_buffer=1000 + 10 * len(specs),
                    types=[ActorCrashed, ActorFailed, HealthChanged, BreakerTransition],
                ) as events,
                trio.open_nursery() as nursery,
            ):
                stager = _Stager(registry, prefix)
                nursery.start_soon(stager.read, events)
                names = await stager.run(list(specs))
                nursery.cancel_scope.cancel()
        return names
    finally:
        clock.autojump_threshold = threshold


class _Stager:
    """One staging run: what the event stream and the providers have said so far, and
    the phases."""

    def __init__(self, registry: Registry, prefix: str) -> None:
        self.registry = registry
        self.prefix = prefix
        self.failed: set[str] = set()
        self.crashed: set[str] = set()
        self.health: dict[str, bool] = {}
        self.half_open: set[str] = set()
        self.dropped = 0
        self._changed = trio.Event()

    def wake(self) -> None:
        """Something happened: whoever waits in :meth:`until` looks again."""
        self._changed.set()
        self._changed = trio.Event()

    async def read(self, events: trio.abc.ReceiveChannel[RegistryEvent]) -> None:
        """Note every event of the stream, waking the phase that waits."""
        async for event in events:
            if isinstance(event, EventsDropped):
                self.dropped += event.count
            name = event.name or ""
            if isinstance(event, ActorFailed):
                self.failed.add(name)
            elif isinstance(event, ActorCrashed):
                self.crashed.add(name)
            elif isinstance(event, HealthChanged):
                self.health[name] = event.healthy
            elif isinstance(event, BreakerTransition) and event.new is CircuitState.HALF_OPEN:
                self.half_open.add(name)
            self.wake()

    async def until(self, pending: Callable[[], list[StagedProvider]], what: str) -> None:
        """Wait until no provider is *pending* (within :data:`_PATIENCE` virtual seconds)."""
        with trio.move_on_after(_PATIENCE):
            while pending():
                if self.dropped:
                    raise StagingError(f"staging missed {self.dropped} registry events")
                await self._changed.wait()
            return
        late = pending()
        raise StagingError(
            f"waited {_PATIENCE:g}s for {', '.join(p.name for p in late)} {what}; "
            + self._states(late)
            + _HINT
        )

    async def run(self, specs: list[ProviderSpec]) -> list[str]:
        """Register a provider per spec and stage them; return their names."""
        registry = self.registry
        providers = [
            _provider(f"{self.prefix}-{index}", index, spec) for index, spec in enumerate(specs)
        ]
        for provider in providers:
            spec = provider.spec
            provider._entered = self.wake
            registry.register(
                spec.handler,
                spec.service_type,
                provider,
                spec.priority,
                capabilities=spec.capabilities | {f"{self.prefix}:{provider.index}"},
                priority_group=spec.priority_group,
                strategy=spec.strategy,
                name=provider.name,
            )
        self._check_timeouts(providers)

        # Phase 1: every provider goes where its own behaviour takes it: started, health
        # checked, or, for failed ones, crashed, restarted after the back-off and crashed
        # again (this moves the clock).
        def unsettled() -> list[StagedProvider]:
            return [p for p in providers if not self._settled(p)]

        await self.until(unsettled, "to start, answer a health check, or fail")

        # Phase 2: half-open breakers, briefly forced open, moved on by their actors; then
        # the full ones have their probe permits taken.
        halves = [p for p in providers if p.spec.breaker in ("half_open", "half_open_full")]
        for provider in halves:
            registry.force_open(provider.name, _BRIEFLY)

        def still_open() -> list[StagedProvider]:
            return [p for p in halves if p.name not in self.half_open]

        await self.until(still_open, "to move from open to half-open")
        for provider in halves:
            if provider.spec.breaker == "half_open_full":
                self._take_permits(provider)

        # Phase 3, last so that they hold from now on: open breakers, and crashes.
        for provider in providers:
            if provider.spec.breaker == "open":
                registry.force_open(provider.name, STAGE_HOLD)
        restarting = [p for p in providers if p.spec.actor == "restarting"]
        for provider in restarting:
            provider._crash.set()

        def not_crashed() -> list[StagedProvider]:
            return [p for p in restarting if p.name not in self.crashed]

        await self.until(not_crashed, "to crash")
        self._verify(providers)
        return [p.name for p in providers]

    def _settled(self, provider: StagedProvider) -> bool:
        spec = provider.spec
        if spec.actor == "failed":
            return provider.name in self.failed
        if spec.supervised and spec.actor in ("running", "restarting") and not provider._runs:
            return False
        if spec.actor == "running" and spec.health != "unknown":
            return self.health.get(provider.name) is spec.health_value
        return True

    def _take_permits(self, provider: StagedProvider) -> None:
        spec = provider.spec
        quota = self.registry.view(provider.name).breaker_config.half_open_max_calls
        for taken in range(quota):
            chosen = self.registry.get_service_nowait(
                spec.handler,
                spec.service_type,
                [f"{self.prefix}:{provider.index}"],
                fallback_to_global=False,
            )
            if chosen is not provider:
                raise StagingError(
                    f"{provider.name}: a resolve for its probe permit {taken + 1} of {quota}"
                    f" returned {chosen!r}; " + self._states([provider])
                )

    def _check_timeouts(self, providers: list[StagedProvider]) -> None:
        for provider in providers:
            spec = provider.spec
            pending = spec.actor == "running" and spec.has_health_check and spec.health == "unknown"
            if not (pending or spec.breaker == "half_open_full"):
                continue
            timeout = self.registry.view(provider.name).breaker_config.timeout_duration
            if timeout < STAGING_TIMEOUT:
                what = "a pending health check" if pending else "its probe permits"
                raise StagingError(
                    f"{provider.name}: timeout_duration {timeout:g}s is too short for"
                    f" {what} to last; staging needs >= {STAGING_TIMEOUT:g}s" + _HINT
                )

    def _states(self, providers: list[StagedProvider]) -> str:
        return "; ".join(f"{p.name} is {_observed(self.registry, p.name)}" for p in providers)

    def _verify(self, providers: list[StagedProvider]) -> None:
        problems = []
        for provider in providers:
            spec = provider.spec
            view = self.registry.view(provider.name)
            stats = view.breaker
            full = spec.breaker == "half_open_full"
            state = "half_open" if full else spec.breaker
            probes = view.breaker_config.half_open_max_calls if full else 0
            wrong = (
                view.actor_status is not spec.actor_status
                or view.health is not spec.health_value
                or view.has_health_check is not spec.has_health_check
                or stats["state"] != state
                or stats["probes_in_flight"] != probes
                or view.routable is not spec.routable
                or view.available is not spec.available
            )
            if wrong:
                problems.append(
                    f"{provider.name} should be {_describe(spec)}, routable {spec.routable},"
                    f" available {spec.available}; it is {_observed(self.registry, provider.name)}"
                )
        if problems:
            raise StagingError("; ".join(problems) + _HINT)


_HINT = (
    " (open the registry with ciris_actors.testing.staging_registry(), or with its"
    " restart policy and a timeout_duration of at least STAGING_TIMEOUT)"
)


def _describe(spec: ProviderSpec) -> str:
    check = "with is_healthy" if spec.has_health_check else "without is_healthy"
    kind = "supervised" if spec.supervised else "plain"
    return f"{spec.actor}, breaker {spec.breaker}, health {spec.health} ({kind}, {check})"


def _observed(registry: Registry, name: str) -> str:
    view = registry.view(name)
    stats = view.breaker
    return (
        f"{view.actor_status.value}, breaker {stats['state']}"
        f" ({stats['probes_in_flight']} probes out), health {view.health}"
        f" ({view.health_reason}), routable {view.routable}, available {view.available}"
    )
