"""The scenario model: providers, workload, faults and seed, loaded from TOML.

Pure data with validation. Every error names the file (when loaded from one) and the
field, e.g. ``faults[2].provider: unknown provider 'openia'``.
"""

from __future__ import annotations

import difflib
import enum
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._types import coerce_priority, coerce_strategy
from ..breaker import CircuitBreakerConfig
from ..budget import RetryBudget
from ..restart import RestartPolicy
from .faults import Fault, FaultKind, fault_class, fault_classes, fault_settings

__all__ = [
    "CLASSIFY",
    "FLEET_FAULT_KINDS",
    "Distribution",
    "Fault",  # from .faults, kept importable from here
    "FaultKind",  # from .faults, kept importable from here
    "FleetFault",
    "FleetSpec",
    "Latency",
    "ProviderSpec",
    "RequestMix",
    "Scenario",
    "ScenarioError",
    "Workload",
    "load_scenario",
    "node_name",
    "parse_scenario",
]


#: The values of ``[registry] classify``.
CLASSIFY = ("http", "none")

#: The kinds of ``[[fleet.faults]]``: faults of the fleet store, not of a provider.
FLEET_FAULT_KINDS = ("partition", "store_down")


def node_name(index: int) -> str:
    """The id of a fleet's node *index* (from 0): ``node-1``, ``node-2``, ..."""
    return f"node-{index + 1}"


class ScenarioError(ValueError):
    """A scenario is malformed or inconsistent. The message names the file and field."""


class Distribution(enum.Enum):
    """Shape of a latency distribution."""

    FIXED = "fixed"
    UNIFORM = "uniform"
    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"


@attrs.frozen
class Latency:
    """A latency distribution in seconds.

    ``fixed``: always ``median``. ``uniform``: between ``low`` and ``high``.
    ``exponential``: mean ``median / ln 2``, i.e. median ``median``. ``lognormal``:
    median ``median`` and 99th percentile ``p99``.
    """

    distribution: Distribution = attrs.field(
        default=Distribution.LOGNORMAL, validator=attrs.validators.instance_of(Distribution)
    )
    median: float = 0.5
    p99: float = 2.0
    low: float = 0.0
    high: float = 1.0


@attrs.frozen
class ProviderSpec:
    """One simulated provider and how it behaves when no fault is active."""

    name: str
    service_type: str = "llm"
    handler: str = "*"
    group: int = 0
    priority: str = "NORMAL"
    strategy: str = "fallback"
    capabilities: tuple[str, ...] = ()
    breaker: CircuitBreakerConfig | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(CircuitBreakerConfig)),
    )
    latency: Latency = attrs.field(
        default=Latency(), validator=attrs.validators.instance_of(Latency)
    )
    error_rate: float = 0.0
    #: Whether the provider has ``is_healthy`` (its health then follows faults).
    health_check: bool = True
    #: Seconds ``start()`` takes when no slow_start fault is active.
    start_delay: float = 0.0
    #: Its share in a ``weighted`` group (relative to the other members' weights).
    weight: float = 1.0
    #: Requests it may have in flight at once (``None``: no cap).
    max_in_flight: int | None = None


@attrs.frozen
class RequestMix:
    """One kind of request in the workload, and its weight."""

    handler: str = "*"
    service_type: str = "llm"
    required_capabilities: tuple[str, ...] = ()
    weight: float = 1.0


@attrs.frozen
class Workload:
    """The traffic: open-loop arrivals at ``rate`` per second for ``duration`` seconds."""

    duration: float = 3600.0
    rate: float = 50.0
    #: ``poisson`` (exponential gaps) or ``uniform`` (evenly spaced).
    arrival: str = "poisson"
    #: Requests in flight at most; an arrival beyond it is rejected (shed), not queued.
    concurrency: int = 1000
    #: ``call`` (failover across providers) or ``lease`` (one provider, no failover).
    mode: str = "call"
    mix: tuple[RequestMix, ...] = (RequestMix(),)
    #: The share of requests that are long (their calls overflow a provider under a
    #: ``context_overflow`` fault), 0 to 1; each request is long or not by a fixed draw.
    long_share: float = 0.0
    #: ``call`` mode: seconds without an answer after which a hedged second attempt
    #: starts (``None``: no hedging). Only the ``tasks`` engine carries hedged calls.
    hedge_after: float | None = None


@attrs.frozen
class FleetFault:
    """A fault of the fleet store, from ``at`` for ``duration`` seconds.

    Attributes:
      kind: ``partition`` (the nodes in ``nodes`` are cut from the store:
        ``MemoryFleet.partition`` / ``heal``) or ``store_down`` (the whole store stops
        and loses what it held: ``MemoryFleet.take_down`` / ``bring_up``).
      at: when it starts, in scenario seconds.
      duration: how long it lasts.
      nodes: the nodes a partition cuts off (empty for ``store_down``).
    """

    kind: str
    at: float
    duration: float
    nodes: tuple[str, ...] = ()

    @property
    def end(self) -> float:
        """When the fault stops."""
        return self.at + self.duration


@attrs.frozen
class FleetSpec:
    """A fleet of registries sharing verdicts through one ``MemoryFleet`` store.

    Attributes:
      nodes: how many nodes (registries), named ``node-1`` ... ``node-N``.
      quorum: distinct nodes whose ordinary opens within ``quorum_window`` make an open
        fleet-wide.
      quorum_window: seconds a node's open counts toward the quorum.
      latency: seconds every store operation takes.
      faults: the store's faults (partitions, the store down).
    """

    nodes: int
    quorum: int = 1
    quorum_window: float = 60.0
    latency: float = 0.0
    faults: tuple[FleetFault, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The node ids, in order."""
        return tuple(node_name(i) for i in range(self.nodes))


@attrs.frozen
class Scenario:
    """Everything one simulation run needs."""

    name: str
    providers: tuple[ProviderSpec, ...]
    workload: Workload = Workload()
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    description: str = ""
    health_check_interval: float | None = 10.0
    restart_policy: RestartPolicy = attrs.field(factory=RestartPolicy)
    default_breaker: CircuitBreakerConfig = attrs.field(factory=CircuitBreakerConfig)
    #: How the registry classifies provider errors: ``http`` (``http_classifier``, so a
    #: 429 rate-limits, a 401 disables and a context overflow reroutes) or ``none``
    #: (every error a plain failure).
    classify: str = "http"
    #: With ``classify = "http"``: the capabilities a request that overflowed a
    #: provider's context window needs (the classifier's ``context_overflow``); empty:
    #: an overflow is the request's fault (``ignore``).
    context_overflow: tuple[str, ...] = ("long_context",)
    #: ``open_registry(overprovisioning_factor=)``: proportional spillover between
    #: groups (``None``: off).
    overprovisioning_factor: float | None = None
    #: ``open_registry(retry_budget=)`` (``None``: none).
    retry_budget: RetryBudget | None = None
    #: A fleet of registries sharing one store (``None``: one registry, no fleet).
    fleet: FleetSpec | None = None

    def needs_tasks_engine(self) -> str | None:
        """What in this scenario only the ``tasks`` engine carries (hedged calls), as
        the field that asks for it; ``None`` when both engines carry everything."""
        if self.workload.hedge_after is not None:
            return "workload.hedge_after"
        return None

    def provider(self, name: str) -> ProviderSpec:
        """The provider named *name*."""
        for spec in self.providers:
            if spec.name == name:
                return spec
        raise KeyError(name)


# -- loading ------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario from a TOML file.

    Raises:
      ScenarioError: the file cannot be read, is not TOML, or describes an invalid or
        inconsistent scenario; the message names the file and the field.
    """
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark some editors write is accepted and dropped.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
            f" {exc.start}); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_scenario(data, default_name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def parse_scenario(data: Mapping[str, Any], default_name: str = "scenario") -> Scenario:
    """Build a validated :class:`Scenario` from already-parsed TOML data.

    Raises:
      ScenarioError: naming the field that is wrong.
    """
    table = _Table(data, "")
    registry = _Table(table.get("registry", {}), "registry")
    default_breaker = _breaker(registry.get("breaker", {}), "registry.breaker")
    if default_breaker is None:  # pragma: no cover - an empty table gives the defaults
        default_breaker = CircuitBreakerConfig()
    providers = tuple(
        _provider(item, f"providers[{i}]")
        for i, item in enumerate(table.array("providers", required=True))
    )
    if not providers:
        raise ScenarioError("providers: at least one provider is needed")
    names = [p.name for p in providers]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ScenarioError(f"providers[{i}].name: duplicate provider name {name!r}")
    workload = _workload(table.get("workload", {}), providers)
    fleet = _fleet(table.get("fleet"))
    node_names = fleet.names if fleet is not None else None
    faults = tuple(
        _fault(item, f"faults[{i}]", names, node_names)
        for i, item in enumerate(table.array("faults"))
    )
    scenario = Scenario(
        name=table.string("name", default_name),
        description=table.string("description", ""),
        seed=table.integer("seed", 0, minimum=0),
        providers=providers,
        workload=workload,
        faults=faults,
        health_check_interval=(
            registry.number("health_check_interval", 10.0, strict=False, optional=True)
            or None  # 0: periodic checks off
        ),
        restart_policy=_restart(registry.get("restart_policy", {}), "registry.restart_policy"),
        default_breaker=default_breaker,
        classify=_choice(registry, "classify", "http", CLASSIFY),
        context_overflow=registry.strings("context_overflow", ("long_context",)),
        overprovisioning_factor=registry.number(
            "overprovisioning_factor", None, minimum=1.0, strict=False, optional=True
        ),
        retry_budget=_retry_budget(registry.get("retry_budget"), "registry.retry_budget"),
        fleet=fleet,
    )
    table.finish()
    registry.finish()
    return scenario


class _Table:
    """A TOML table read field by field; unknown keys are an error at :meth:`finish`."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{where or 'scenario'}: expected a table, got {_kind(data)}")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def string(self, key: str, default: str | None = None) -> str:
        value = self.get(key, default)
        if value is None:
            raise self.missing(key)
        if not isinstance(value, str) or (not value and default is None):
            raise ScenarioError(f"{self.field(key)}: expected a non-empty string, got {value!r}")
        return value

    def number(
        self,
        key: str,
        default: float | None,
        *,
        minimum: float = 0.0,
        strict: bool = True,
        optional: bool = False,
        maximum: float | None = None,
    ) -> Any:
        value = self.get(key, default)
        if value is None:
            if optional:
                return None
            raise self.missing(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{self.field(key)}: expected a number, got {value!r}")
        if math.isnan(value) or math.isinf(value):
            raise ScenarioError(f"{self.field(key)}: must be finite, got {value!r}")
        if value < minimum or (strict and value == minimum):
            op = ">" if strict else ">="
            raise ScenarioError(f"{self.field(key)}: must be {op} {minimum:g}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ScenarioError(f"{self.field(key)}: must be <= {maximum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{self.field(key)}: expected an integer, got {value!r}")
        if value < minimum:
            raise ScenarioError(f"{self.field(key)}: must be >= {minimum}, got {value!r}")
        return value

    def strings(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ScenarioError(f"{self.field(key)}: expected a list of strings, got {value!r}")
        return tuple(value)

    def array(self, key: str, *, required: bool = False) -> Sequence[Any]:
        value = self.get(key)
        if value is None:
            if required:
                raise self.missing(key, " (an array of tables)")
            return ()
        if not isinstance(value, list):
            raise ScenarioError(
                f"{self.field(key)}: expected an array of tables, got {_kind(value)}"
            )
        return value

    def missing(self, key: str, what: str = "") -> ScenarioError:
        """The error for required *key* missing: a misspelling of it, if the table has
        one (``knd`` for ``kind``), is named rather than the missing key."""
        strays = [k for k in self.data if k not in self.used]
        close = difflib.get_close_matches(key, strays, n=1, cutoff=0.6)
        if close:
            return ScenarioError(f"{self.field(close[0])}: unknown field (did you mean {key!r}?)")
        return ScenarioError(f"{self.field(key)}: required{what}")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(unknown_field(self.field(unknown[0]), unknown[0], self.used))


def unknown_field(field: str, key: str, known: Iterable[str]) -> str:
    """The message for an unknown field, with the known field it most resembles."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"{field}: unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _choice(table: _Table, key: str, default: str | None, choices: Sequence[str]) -> str:
    value = table.string(key, default)
    if value not in choices:
        raise ScenarioError(
            f"{table.field(key)}: unknown value {value!r} (expected one of {', '.join(choices)})"
        )
    return value


def _breaker(data: object, where: str) -> CircuitBreakerConfig | None:
    table = _Table(data, where)
    if not table.data:
        return None if where.startswith("providers") else CircuitBreakerConfig()
    fields = {f.name for f in attrs.fields(CircuitBreakerConfig)}
    for key in table.data:
        if key not in fields:
            raise ScenarioError(unknown_field(table.field(key), key, fields))
    try:
        return CircuitBreakerConfig(**dict(table.data))
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}.{exc}") from None


def _restart(data: object, where: str) -> RestartPolicy:
    table = _Table(data, where)
    fields = {f.name for f in attrs.fields(RestartPolicy)}
    for key in table.data:
        if key not in fields:
            raise ScenarioError(unknown_field(table.field(key), key, fields))
    values = dict(table.data)
    values.setdefault("jitter", 0.1)
    try:
        return RestartPolicy(**values)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}.{exc}") from None


def _retry_budget(data: object, where: str) -> RetryBudget | None:
    if data is None:
        return None
    table = _Table(data, where)
    budget = RetryBudget(
        ratio=table.number("ratio", 0.2, strict=False),
        min_per_second=table.number("min_per_second", 3.0, strict=False),
        window=table.number("window", 10.0),
    )
    table.finish()
    return budget


def _latency(data: object, where: str) -> Latency:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        data = {"distribution": "fixed", "median": data}
    table = _Table(data, where)
    kind = _choice(table, "distribution", "lognormal", [d.value for d in Distribution])
    latency = Latency(
        distribution=Distribution(kind),
        median=table.number("median", 0.5, strict=False),
        p99=table.number("p99", 2.0, strict=False),
        low=table.number("low", 0.0, strict=False),
        high=table.number("high", 1.0, strict=False),
    )
    if latency.distribution is Distribution.LOGNORMAL and latency.p99 < latency.median:
        raise ScenarioError(f"{where}.p99: must be >= median ({latency.median:g})")
    if latency.distribution is Distribution.UNIFORM and latency.high < latency.low:
        raise ScenarioError(f"{where}.high: must be >= low ({latency.low:g})")
    table.finish()
    return latency


def _provider(data: object, where: str) -> ProviderSpec:
    table = _Table(data, where)
    priority = table.string("priority", "NORMAL")
    strategy = table.string("strategy", "fallback")
    try:
        priority = coerce_priority(priority, f"{where}.priority").name
        strategy = coerce_strategy(strategy, f"{where}.strategy").value
    except (TypeError, ValueError) as exc:
        raise ScenarioError(str(exc)) from None
    spec = ProviderSpec(
        name=table.string("name"),
        service_type=table.string("service_type", "llm"),
        handler=table.string("handler", "*"),
        group=table.integer("group", 0),
        priority=priority,
        strategy=strategy,
        capabilities=table.strings("capabilities"),
        breaker=_breaker(table.get("breaker", {}), f"{where}.breaker"),
        latency=_latency(table.get("latency", {}), f"{where}.latency"),
        error_rate=table.number("error_rate", 0.0, strict=False, maximum=1.0),
        health_check=_boolean(table, "health_check", True),
        start_delay=table.number("start_delay", 0.0, strict=False),
        weight=table.number("weight", 1.0),
        max_in_flight=_optional_count(table, "max_in_flight"),
    )
    table.finish()
    return spec


def _optional_count(table: _Table, key: str) -> int | None:
    if table.get(key) is None:
        return None
    return table.integer(key, 1, minimum=1)


def _boolean(table: _Table, key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ScenarioError(f"{table.field(key)}: expected true or false, got {value!r}")
    return value


def _workload(data: object, providers: Sequence[ProviderSpec]) -> Workload:
    table = _Table(data, "workload")
    mix_data = table.array("mix")
    mix = tuple(_mix(item, f"workload.mix[{i}]") for i, item in enumerate(mix_data))
    if not mix:
        service_type = providers[0].service_type
        mix = (RequestMix(service_type=service_type),)
    workload = Workload(
        duration=table.number("duration", 3600.0),
        rate=table.number("rate", 50.0),
        arrival=_choice(table, "arrival", "poisson", ["poisson", "uniform"]),
        concurrency=table.integer("concurrency", 1000, minimum=1),
        mode=_choice(table, "mode", "call", ["call", "lease"]),
        mix=mix,
        long_share=table.number("long_share", 0.0, strict=False, maximum=1.0),
        hedge_after=table.number("hedge_after", None, optional=True),
    )
    if workload.hedge_after is not None and workload.mode != "call":
        raise ScenarioError('workload.hedge_after: hedging needs mode = "call"')
    types = {p.service_type for p in providers}
    for i, item in enumerate(mix):
        if item.service_type not in types:
            raise ScenarioError(
                f"workload.mix[{i}].service_type: no provider serves {item.service_type!r}"
            )
    table.finish()
    return workload


def _mix(data: object, where: str) -> RequestMix:
    table = _Table(data, where)
    mix = RequestMix(
        handler=table.string("handler", "*"),
        service_type=table.string("service_type", "llm"),
        required_capabilities=table.strings("required_capabilities"),
        weight=table.number("weight", 1.0),
    )
    table.finish()
    return mix


def _fleet(data: object) -> FleetSpec | None:
    if data is None:
        return None
    table = _Table(data, "fleet")
    value = table.get("nodes")
    if value is None:
        raise table.missing("nodes")
    nodes = table.integer("nodes", 1, minimum=1)
    quorum = table.integer("quorum", 1, minimum=1)
    if quorum > nodes:
        raise ScenarioError(f"fleet.quorum: must be <= nodes ({nodes}), got {quorum}")
    quorum_window = table.number("quorum_window", 60.0)
    latency = table.number("latency", 0.0, strict=False)
    spec = FleetSpec(nodes=nodes, quorum=quorum, quorum_window=quorum_window, latency=latency)
    faults = tuple(
        _fleet_fault(item, f"fleet.faults[{i}]", spec.names)
        for i, item in enumerate(table.array("faults"))
    )
    table.finish()
    return attrs.evolve(spec, faults=faults)


def _nodes(table: _Table, known: Sequence[str] | None) -> tuple[str, ...]:
    """The ``nodes`` list of a fault's table: each a node of the fleet, none twice."""
    nodes = table.strings("nodes")
    if not nodes:
        if "nodes" in table.data:
            raise ScenarioError(f"{table.field('nodes')}: must name at least one node")
        return ()
    if known is None:
        raise ScenarioError(f"{table.field('nodes')}: needs a [fleet] section")
    for node in nodes:
        if node not in known:
            raise ScenarioError(
                f"{table.field('nodes')}: unknown node {node!r} (known: {known[0]} to {known[-1]})"
            )
    if len(set(nodes)) != len(nodes):
        raise ScenarioError(f"{table.field('nodes')}: a node is named twice")
    return nodes


def _fleet_fault(data: object, where: str, known: Sequence[str]) -> FleetFault:
    table = _Table(data, where)
    kind = _choice(table, "kind", None, FLEET_FAULT_KINDS)
    fault = FleetFault(
        kind=kind,
        at=table.number("at", None, strict=False),
        duration=table.number("duration", None),
        nodes=_nodes(table, known),
    )
    if kind == "partition" and not fault.nodes:
        raise ScenarioError(f"{where}.nodes: required (the nodes the partition cuts off)")
    if kind == "store_down" and fault.nodes:
        raise ScenarioError(f"{where}.nodes: the whole store goes down; leave nodes out")
    table.finish()
    return fault


def _fault(
    data: object, where: str, names: Sequence[str], nodes: Sequence[str] | None = None
) -> Fault:
    table = _Table(data, where)
    if table.data.get("kind") in FLEET_FAULT_KINDS:
        raise ScenarioError(
            f"{where}.kind: {table.data['kind']!r} is a fault of the fleet store: put it"
            " under [[fleet.faults]]"
        )
    kind = _choice(table, "kind", None, [cls.kind.value for cls in fault_classes()])
    provider = table.string("provider")
    if provider not in names:
        raise ScenarioError(
            f"{where}.provider: unknown provider {provider!r} (known: {', '.join(names)})"
        )
    at = table.number("at", None, strict=False)
    duration = table.number("duration", None)
    # Every kind's settings are read and checked, kind by kind: a fault's table may carry
    # another kind's settings, which are ignored (the format has always allowed it).
    chosen = fault_class(FaultKind(kind))
    values = {}
    for cls in fault_classes():
        for rule in fault_settings(cls):
            value = table.number(
                rule.name,
                rule.default,
                minimum=rule.minimum,
                strict=rule.exclusive,
                maximum=rule.maximum,
            )
            if cls is chosen:
                values[rule.name] = value
    fault = chosen(provider, at, duration, nodes=_nodes(table, nodes), **values)
    table.finish()
    return fault
