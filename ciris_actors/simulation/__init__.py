"""Fault-injection simulation on trio's virtual clock.

Describe providers, traffic and faults in a :class:`Scenario` (or a TOML file, see
``docs/simulation.md``), run it with :func:`run_scenario` (or :func:`simulate` inside a
test already on a ``MockClock``), and read the :class:`Report`. The registry, its actors,
``call`` and ``lease`` are the real ones; only the providers are simulated.
:func:`run_live` runs a scenario on the real clock instead, for ``ciris-actors serve``.
"""

from .errors import SimulatedError as SimulatedError
from .faults import (
    BadCredentialsFault as BadCredentialsFault,
    ContextOverflowFault as ContextOverflowFault,
    CrashFault as CrashFault,
    ErrorsFault as ErrorsFault,
    Fault as Fault,
    FaultKind as FaultKind,
    FlapFault as FlapFault,
    LatencyFault as LatencyFault,
    OutageFault as OutageFault,
    RateLimitFault as RateLimitFault,
    SlowStartFault as SlowStartFault,
)
from .invariants import InvariantChecker as InvariantChecker, Violation as Violation
from .live import LiveRun as LiveRun, run_live as run_live
from .model import (
    Distribution as Distribution,
    FleetFault as FleetFault,
    FleetSpec as FleetSpec,
    Latency as Latency,
    ProviderSpec as ProviderSpec,
    RequestMix as RequestMix,
    Scenario as Scenario,
    ScenarioError as ScenarioError,
    Workload as Workload,
    load_scenario as load_scenario,
    parse_scenario as parse_scenario,
)
from .providers import SimulatedProvider as SimulatedProvider
from .report import Report as Report
from .runner import run_scenario as run_scenario, simulate as simulate
from .scenarios import bundled_scenarios as bundled_scenarios, default_scenario as default_scenario

__all__ = [
    "BadCredentialsFault",
    "ContextOverflowFault",
    "CrashFault",
    "Distribution",
    "ErrorsFault",
    "Fault",
    "FaultKind",
    "FlapFault",
    "FleetFault",
    "FleetSpec",
    "InvariantChecker",
    "Latency",
    "LatencyFault",
    "LiveRun",
    "OutageFault",
    "ProviderSpec",
    "RateLimitFault",
    "Report",
    "RequestMix",
    "Scenario",
    "ScenarioError",
    "SimulatedError",
    "SimulatedProvider",
    "SlowStartFault",
    "Violation",
    "Workload",
    "bundled_scenarios",
    "default_scenario",
    "load_scenario",
    "parse_scenario",
    "run_live",
    "run_scenario",
    "simulate",
]
