"""ciris_actors: trio-native supervision, circuit breaking and priority routing for
service providers.

Ask for "the best available LLM with structured output" and get one while providers
fail, hang, crash and recover. See ``docs/`` for the architecture and every rule.
"""

# The public namespace: every name below is re-exported from the private module that
# implements it, one import per module, in the order of the layers (closed sets and
# errors, the pure core, events, the facade). Subpackages with their own extras
# (control, simulation) and the test helpers (testing) are imported on their own.
from ._errors import (
    Attempt as Attempt,
    CircuitBreakerError as CircuitBreakerError,
    DuplicateProviderError as DuplicateProviderError,
    NoServiceAvailable as NoServiceAvailable,
    RegistryError as RegistryError,
    RetryBudgetExhausted as RetryBudgetExhausted,
    Skip as Skip,
    UnknownProviderError as UnknownProviderError,
)
from ._inspect import SelectionExplanation as SelectionExplanation
from ._lease import Outcome as Outcome, Ticket as Ticket
from ._observe import ResolveObserver as ResolveObserver, ResolveTiming as ResolveTiming
from ._types import (
    ActorStatus as ActorStatus,
    CircuitState as CircuitState,
    HealthCheckProtocol as HealthCheckProtocol,
    Priority as Priority,
    SelectionStrategy as SelectionStrategy,
)
from ._views import ProviderView as ProviderView
from .breaker import CircuitBreaker as CircuitBreaker, CircuitBreakerConfig as CircuitBreakerConfig
from .budget import RetryBudget as RetryBudget
from .events import (
    ActorCrashed as ActorCrashed,
    ActorFailed as ActorFailed,
    ActorRestarted as ActorRestarted,
    BreakerTransition as BreakerTransition,
    EventsDropped as EventsDropped,
    EventSubscription as EventSubscription,
    FleetDegraded as FleetDegraded,
    FleetRestored as FleetRestored,
    FleetVerdict as FleetVerdict,
    HealthChanged as HealthChanged,
    HedgeStarted as HedgeStarted,
    ProviderClosed as ProviderClosed,
    ProviderDisabled as ProviderDisabled,
    ProviderRegistered as ProviderRegistered,
    ProviderUnregistered as ProviderUnregistered,
    RegistryEvent as RegistryEvent,
    ResolveMiss as ResolveMiss,
    RetryRefused as RetryRefused,
    SpilloverChanged as SpilloverChanged,
)
from .guard import Guard as Guard
from .outcomes import (
    ErrorClass as ErrorClass,
    ErrorKind as ErrorKind,
    classify_http as classify_http,
    http_classifier as http_classifier,
)
from .registry import Registry as Registry, open_registry as open_registry
from .restart import RestartPolicy as RestartPolicy
from .selection import Candidate as Candidate

__version__ = "0.1.0"

__all__ = [
    "ActorCrashed",
    "ActorFailed",
    "ActorRestarted",
    "ActorStatus",
    "Attempt",
    "BreakerTransition",
    "Candidate",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitState",
    "DuplicateProviderError",
    "ErrorClass",
    "ErrorKind",
    "EventSubscription",
    "EventsDropped",
    "FleetDegraded",
    "FleetRestored",
    "FleetVerdict",
    "Guard",
    "HealthChanged",
    "HealthCheckProtocol",
    "HedgeStarted",
    "NoServiceAvailable",
    "Outcome",
    "Priority",
    "ProviderClosed",
    "ProviderDisabled",
    "ProviderRegistered",
    "ProviderUnregistered",
    "ProviderView",
    "Registry",
    "RegistryError",
    "RegistryEvent",
    "ResolveMiss",
    "ResolveObserver",
    "ResolveTiming",
    "RestartPolicy",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryRefused",
    "SelectionExplanation",
    "SelectionStrategy",
    "Skip",
    "SpilloverChanged",
    "Ticket",
    "UnknownProviderError",
    "classify_http",
    "http_classifier",
    "open_registry",
]

# Reprs and docs say ciris_actors.X, not the private module the name lives in.
for _name in __all__:
    globals()[_name].__module__ = "ciris_actors"
del _name
