"""Helpers for testing code that uses ciris_actors, like ``trio.testing``: a scripted
provider (:class:`FakeProvider`), a conformance check (:func:`check_provider`), the seed
set-up, and :func:`stage`, which puts providers into the states its :class:`ProviderSpec` list
asks for. Hypothesis strategies are in :mod:`.strategies` (the ``strategies`` extra).
"""

from __future__ import annotations

from ._conformance import check_provider as check_provider
from ._fake import FakeProvider as FakeProvider
from ._seed import register_seed_llm_setup as register_seed_llm_setup
from ._staging import (
    STAGE_HOLD as STAGE_HOLD,
    STAGING_BREAKER as STAGING_BREAKER,
    STAGING_RESTART_POLICY as STAGING_RESTART_POLICY,
    STAGING_TIMEOUT as STAGING_TIMEOUT,
    ProviderSpec as ProviderSpec,
    StagedProvider as StagedProvider,
    StagingError as StagingError,
    stage as stage,
    staging_registry as staging_registry,
)

__all__ = [
    "STAGE_HOLD",
    "STAGING_BREAKER",
    "STAGING_RESTART_POLICY",
    "STAGING_TIMEOUT",
    "FakeProvider",
    "ProviderSpec",
    "StagedProvider",
    "StagingError",
    "check_provider",
    "register_seed_llm_setup",
    "stage",
    "staging_registry",
]

# Reprs and docs say ciris_actors.testing.X, not the private module the name lives in.
for _name in __all__:
    if not _name.isupper():
        globals()[_name].__module__ = "ciris_actors.testing"
del _name
