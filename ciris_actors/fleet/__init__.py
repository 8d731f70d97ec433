"""Fleet state: registries in many processes share verdicts about providers.

``open_registry(fleet=...)`` takes a :class:`FleetLink`: a node of an in-process
:class:`MemoryFleet` (tests, simulations) or a :class:`RedisFleet` (extra ``redis``).
See ``docs/fleet.md`` for what is shared, the consistency promised, and what happens when
the store is slow, partitioned or gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._memory import (
    DISABLED_TTL as DISABLED_TTL,
    VERDICT_LINGER as VERDICT_LINGER,
    MemoryFleet as MemoryFleet,
    MemoryFleetNode as MemoryFleetNode,
)
from ._protocol import (
    Claim as Claim,
    FleetLink as FleetLink,
    FleetSettings as FleetSettings,
    FleetUnavailable as FleetUnavailable,
    Report as Report,
    Snapshot as Snapshot,
    Verdict as Verdict,
    VerdictKind as VerdictKind,
)
from ._status import LAG_BUCKETS as LAG_BUCKETS, FleetStatus as FleetStatus

if TYPE_CHECKING:
    from ciris_actors.fleet._redis import RedisFleet as RedisFleet

__all__ = [
    "DISABLED_TTL",
    "LAG_BUCKETS",
    "VERDICT_LINGER",
    "Claim",
    "FleetLink",
    "FleetSettings",
    "FleetStatus",
    "FleetUnavailable",
    "MemoryFleet",
    "MemoryFleetNode",
    "RedisFleet",
    "Report",
    "Snapshot",
    "Verdict",
    "VerdictKind",
]


def __getattr__(name: str) -> Any:
    # RedisFleet needs the `redis` extra (coredis): imported only when asked for. The
    # import is absolute because import-linter reads an indented relative import in a
    # package's __init__ as one of the parent package.
    if name == "RedisFleet":
        from ciris_actors.fleet._redis import RedisFleet

        return RedisFleet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
