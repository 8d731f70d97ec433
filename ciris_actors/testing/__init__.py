"""Helpers for testing code that uses ciris_actors, like ``trio.testing``.

:class:`FakeProvider` is a provider whose health, failures, latency and crashes a test
controls; :func:`check_provider` runs a user's own provider through the lifecycle the
registry will put it through; :func:`register_seed_llm_setup` registers the seed design's
worked example with fake providers.
"""

from __future__ import annotations

from ._conformance import check_provider as check_provider
from ._fake import FakeProvider as FakeProvider
from ._seed import register_seed_llm_setup as register_seed_llm_setup

__all__ = ["FakeProvider", "check_provider", "register_seed_llm_setup"]

for _name in __all__:
    globals()[_name].__module__ = "ciris_actors.testing"
del _name
