"""ciris_actors: trio-native supervision, circuit breaking and priority routing for
service providers.

Ask for "the best available LLM with structured output" and get one while providers
fail, hang, crash and recover. See ``docs/`` for the architecture and every rule.
"""

from ._errors import (
    Attempt as Attempt,
)
from ._errors import (
    CircuitBreakerError as CircuitBreakerError,
)
from ._errors import (
    DuplicateProviderError as DuplicateProviderError,
)
from ._errors import (
    NoServiceAvailable as NoServiceAvailable,
)
from ._errors import (
    RegistryError as RegistryError,
)
from ._errors import (
    Skip as Skip,
)
from ._errors import (
    UnknownProviderError as UnknownProviderError,
)
from ._types import (
    CircuitState as CircuitState,
)
from ._types import (
    HealthCheckProtocol as HealthCheckProtocol,
)
from ._types import (
    Priority as Priority,
)
from ._types import (
    SelectionStrategy as SelectionStrategy,
)
from .breaker import CircuitBreaker as CircuitBreaker
from .breaker import CircuitBreakerConfig as CircuitBreakerConfig
from .events import (
    ActorCrashed as ActorCrashed,
)
from .events import (
    ActorFailed as ActorFailed,
)
from .events import (
    ActorRestarted as ActorRestarted,
)
from .events import (
    BreakerTransition as BreakerTransition,
)
from .events import (
    EventsDropped as EventsDropped,
)
from .events import (
    EventSubscription as EventSubscription,
)
from .events import (
    HealthChanged as HealthChanged,
)
from .events import (
    ProviderRegistered as ProviderRegistered,
)
from .events import (
    ProviderUnregistered as ProviderUnregistered,
)
from .events import (
    RegistryEvent as RegistryEvent,
)
from .events import (
    ResolveMiss as ResolveMiss,
)
from .registry import (
    Registry as Registry,
)
from .registry import (
    SelectionExplanation as SelectionExplanation,
)
from .registry import (
    open_registry as open_registry,
)
from .restart import RestartPolicy as RestartPolicy
from .selection import Candidate as Candidate

__version__ = "0.1.0"

__all__ = [
    "ActorCrashed",
    "ActorFailed",
    "ActorRestarted",
    "Attempt",
    "BreakerTransition",
    "Candidate",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitState",
    "DuplicateProviderError",
    "EventSubscription",
    "EventsDropped",
    "HealthChanged",
    "HealthCheckProtocol",
    "NoServiceAvailable",
    "Priority",
    "ProviderRegistered",
    "ProviderUnregistered",
    "Registry",
    "RegistryError",
    "RegistryEvent",
    "ResolveMiss",
    "RestartPolicy",
    "SelectionExplanation",
    "SelectionStrategy",
    "Skip",
    "UnknownProviderError",
    "open_registry",
]

# Reprs and docs say ciris_actors.X, not the private module the name lives in.
for _name in __all__:
    globals()[_name].__module__ = "ciris_actors"
del _name
