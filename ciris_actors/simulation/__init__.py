"""Fault-injection simulation on trio's virtual clock.

Describe providers, traffic and faults in a :class:`Scenario` (or a TOML file, see
``docs/simulation.md``), run it with :func:`run_scenario` (or :func:`simulate` inside a
test already on a ``MockClock``), and read the :class:`Report`. The registry, its actors,
``call`` and ``lease`` are the real ones; only the providers are simulated.
:func:`run_live` runs a scenario on the real clock instead, for ``ciris-actors serve``.
"""

from .faults import CrashFault as CrashFault
from .faults import ErrorsFault as ErrorsFault
from .faults import Fault as Fault
from .faults import FaultKind as FaultKind
from .faults import FlapFault as FlapFault
from .faults import LatencyFault as LatencyFault
from .faults import OutageFault as OutageFault
from .faults import SlowStartFault as SlowStartFault
from .invariants import InvariantChecker as InvariantChecker
from .invariants import Violation as Violation
from .live import LiveRun as LiveRun
from .live import run_live as run_live
from .model import (
    Distribution as Distribution,
)
from .model import (
    Latency as Latency,
)
from .model import (
    ProviderSpec as ProviderSpec,
)
from .model import (
    RequestMix as RequestMix,
)
from .model import (
    Scenario as Scenario,
)
from .model import (
    ScenarioError as ScenarioError,
)
from .model import (
    Workload as Workload,
)
from .model import (
    load_scenario as load_scenario,
)
from .model import (
    parse_scenario as parse_scenario,
)
from .providers import SimulatedError as SimulatedError
from .providers import SimulatedProvider as SimulatedProvider
from .report import Report as Report
from .runner import run_scenario as run_scenario
from .runner import simulate as simulate
from .scenarios import bundled_scenarios as bundled_scenarios
from .scenarios import default_scenario as default_scenario

__all__ = [
    "CrashFault",
    "Distribution",
    "ErrorsFault",
    "Fault",
    "FaultKind",
    "FlapFault",
    "InvariantChecker",
    "Latency",
    "LatencyFault",
    "LiveRun",
    "OutageFault",
    "ProviderSpec",
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
