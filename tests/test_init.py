"""The package's public surface (``ciris_actors/__init__.py``)."""

from __future__ import annotations

import json

import ciris_actors


def test_all_is_exactly_the_public_surface() -> None:
    public = {
        name
        for name in dir(ciris_actors)
        if not name.startswith("_") and not isinstance(getattr(ciris_actors, name), type(json))
    }
    assert set(ciris_actors.__all__) == public
    assert len(ciris_actors.__all__) == len(set(ciris_actors.__all__))
    for name in ciris_actors.__all__:
        obj = getattr(ciris_actors, name)
        assert obj.__module__ == "ciris_actors", name
    contract = {
        "Priority", "SelectionStrategy", "CircuitState", "CircuitBreakerConfig", "RestartPolicy",
        "RegistryError", "CircuitBreakerError", "NoServiceAvailable", "DuplicateProviderError",
        "UnknownProviderError", "HealthCheckProtocol", "CircuitBreaker", "open_registry",
        "Registry",
    }  # fmt: skip
    assert contract <= set(ciris_actors.__all__)
