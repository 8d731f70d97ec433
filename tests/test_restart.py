"""The pure restart policy (``restart.py``): back-off and intensity, without a registry."""

from __future__ import annotations

import random

from ciris_actors import RestartPolicy


def test_restart_backoff_never_overflows_however_many_restarts() -> None:
    policy = RestartPolicy(max_restarts=100_000, within=86_400, initial=0.01, maximum=1.0)
    assert policy.delay(5000, random.Random(0)) <= 1.0
    assert policy.delay(5000, random.Random(0)) >= 0.9
