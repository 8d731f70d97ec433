"""What both simulation engines and the live engine share: a registry opened as a
scenario says (with its classifier), the workload's arrivals and which of them are long,
and one request sent the ``tasks`` way (a trio task through ``call`` or ``lease``).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager

import attrs

from .._errors import NoServiceAvailable
from ..events import EventSubscription, RegistryEvent
from ..fleet import FleetLink
from ..outcomes import Classifier, ErrorKind, classify, http_classifier
from ..registry import Registry, open_registry
from .errors import SimulatedError
from .faults import Fault
from .invariants import InvariantChecker
from .model import ProviderSpec, RequestMix, Scenario, Workload
from .providers import SimulatedProvider

__all__ = [
    "READY_TIMEOUT",
    "ProgressCallback",
    "ProviderFactory",
    "ScenarioSetup",
    "arrivals",
    "is_long",
    "open_scenario",
    "scenario_classifier",
    "send_request",
]

#: ``progress(simulated_seconds_done, simulated_seconds_total)``.
ProgressCallback = Callable[[float, float], None]

#: How long a run waits for providers to become ready before traffic starts.
READY_TIMEOUT = 600.0

#: Builds one provider from its spec, its faults and the run's seed.
ProviderFactory = Callable[[ProviderSpec, Sequence[Fault], int], SimulatedProvider]


@attrs.frozen
class ScenarioSetup:
    """A registry with a scenario's providers registered, from :func:`open_scenario`.

    Attributes:
      registry: the open registry.
      providers: the simulated providers by name, in the scenario's order.
      events: a subscription to the registry's events, opened before any registration.
      classifier: the registry's classifier (:func:`scenario_classifier`), if any.
    """

    registry: Registry
    providers: dict[str, SimulatedProvider]
    events: EventSubscription
    classifier: Classifier | None = None


def scenario_classifier(scenario: Scenario) -> Classifier | None:
    """The classifier *scenario* gives its registry: ``http_classifier`` with its
    ``context_overflow`` capabilities (none: an overflow is ignored) for ``classify =
    "http"``; ``None`` (every error a failure) for ``"none"``."""
    if scenario.classify == "none":
        return None
    return http_classifier(context_overflow=scenario.context_overflow or None)


def is_long(seed: int, request: object, share: float) -> bool:
    """Whether *request* (its key) is a long one, for a workload whose ``long_share`` is
    *share*: a fixed draw per (seed, request), as the error draws are, so both engines
    and the oracle agree without sharing a random stream."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"long:{seed}:{request}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0 < share


@asynccontextmanager
async def open_scenario(
    scenario: Scenario,
    seed: int,
    *,
    max_events: int,
    event_types: Iterable[type[RegistryEvent]] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    factory: ProviderFactory = SimulatedProvider,
    node: str | None = None,
    fleet: FleetLink | None = None,
) -> AsyncIterator[ScenarioSetup]:
    """Open a registry configured as *scenario* says, with its providers registered.

    The block starts once every service type has a ready provider (or *ready_timeout*
    seconds have passed); leaving it closes the registry and every provider.

    Args:
      scenario: the registry settings and the providers to register.
      seed: seeds the providers' random streams and the restart back-off jitter.
      max_events: the buffer of the event subscription (see :meth:`Registry.events`).
      event_types: the event classes to subscribe to (default: all of them).
      ready_timeout: how long to wait for the providers to become ready.
      factory: builds each provider (default :class:`SimulatedProvider`).
      node: in a fleet scenario, the node this registry is: its providers take only the
        faults that strike it, and random streams of their own (``None``: no fleet).
      fleet: the registry's fleet link (``open_registry(fleet=...)``); providers are
        registered under their scenario names, so registries of one scenario in other
        processes match them.

    Yields:
      The registry, the providers and the event subscription.
    """
    providers = {
        spec.name: factory(
            spec,
            [f for f in scenario.faults if f.provider == spec.name and f.strikes(node)],
            seed,
        )
        for spec in scenario.providers
    }
    for spec in scenario.providers:
        provider = providers[spec.name]
        provider.timeout = (spec.breaker or scenario.default_breaker).timeout_duration
        if node is not None:
            provider.rng = random.Random(f"{seed}:{node}:{spec.name}")
    classifier = scenario_classifier(scenario)
    async with (
        open_registry(
            health_check_interval=scenario.health_check_interval,
            restart_policy=scenario.restart_policy,
            default_breaker=scenario.default_breaker,
            seed=seed,
            classify=classifier,
            overprovisioning_factor=scenario.overprovisioning_factor,
            retry_budget=scenario.retry_budget,
            fleet=fleet,
        ) as registry,
        registry.events(max_buffer=max_events, types=event_types) as events,
    ):
        for spec in scenario.providers:
            registry.register(
                spec.handler,
                spec.service_type,
                providers[spec.name],
                spec.priority,
                capabilities=spec.capabilities,
                circuit_breaker_config=spec.breaker,
                priority_group=spec.group,
                strategy=spec.strategy,
                name=spec.name,
                weight=spec.weight,
                max_in_flight=spec.max_in_flight,
            )
        types = sorted({spec.service_type for spec in scenario.providers})
        await registry.wait_ready(ready_timeout, types)
        yield ScenarioSetup(
            registry=registry, providers=providers, events=events, classifier=classifier
        )


def arrivals(workload: Workload, rng: random.Random) -> Iterator[tuple[float, int]]:
    """The workload's arrivals before its duration: ``(scenario time, mix index)``.

    Each arrival draws its time, then its kind of request, from *rng*.
    """
    weights = list(itertools.accumulate(m.weight for m in workload.mix))
    t = 0.0
    for index in itertools.count():
        if workload.arrival == "poisson":
            t += rng.expovariate(workload.rate)
        else:
            t = index / workload.rate
        if t >= workload.duration:
            return
        choice = rng.random() * weights[-1]
        yield t, bisect.bisect_right(weights, choice)


async def send_request(
    registry: Registry,
    mix: RequestMix,
    mode: str,
    request: object,
    tried: list[str],
    checker: InvariantChecker | None = None,
    *,
    long: bool = False,
    classifier: Classifier | None = None,
    hedge_after: float | None = None,
) -> tuple[str, str | None]:
    """Send one request of kind *mix* through *registry*, as the workload's *mode* says.

    Args:
      registry: the registry to route through.
      mix: the handler, service type and capabilities of the request.
      mode: ``call`` (failover across providers) or ``lease`` (one provider).
      request: the request's key: the providers' error draws depend on it.
      tried: each provider the request reached is appended to it, in order.
      checker: checks every routing decision, if given.
      long: whether the request is a long one.
      classifier: the registry's classifier: a reroute it makes adds to the
        capabilities the checker holds the rest of the request to, as ``call`` does.
      hedge_after: ``call`` mode: hedge the call after this many seconds (``None``: no).

    Returns:
      The outcome (``succeeded``, ``failed`` or ``rejected``) and the provider that
      served the request (``None`` unless it succeeded). A request whose error was the
      caller's (classified ``ignore``) failed.
    """
    required = frozenset(mix.required_capabilities)

    async def serve(provider: SimulatedProvider, request: object) -> str:
        nonlocal required
        if checker is not None:
            checker.on_route(provider.name, mix.handler, mix.service_type, required, tried)
        tried.append(provider.name)
        try:
            return await provider.handle(request, long=long)
        except SimulatedError as error:
            if classifier is not None and error.status_code is not None:
                verdict = classify(error, classifier)
                if verdict.kind is ErrorKind.REROUTE:
                    required = required | verdict.require
            raise

    try:
        if mode == "call":
            served = await registry.call(
                mix.handler,
                mix.service_type,
                serve,
                request,
                required_capabilities=required,
                hedge_after=hedge_after,
            )
        else:
            async with registry.lease(mix.handler, mix.service_type, required) as provider:
                served = await serve(provider, request)
    except NoServiceAvailable as error:
        return ("failed" if error.attempts else "rejected"), None
    except Exception:
        # Lease mode: the provider's error or the deadline. Call mode: an error that
        # ``call`` raises at once (classified ``ignore`` or ``success``).
        return "failed", None
    return "succeeded", served
