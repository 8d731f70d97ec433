"""The one private trio name the simulation uses (the scheduler's random generator, for
reproducible runs) is still there: if a trio release renames it, this fails first."""

from __future__ import annotations

import random

from ciris_actors.simulation._trio_private import scheduler_random, seed_scheduler


def test_trio_still_has_a_scheduler_random_generator() -> None:
    assert isinstance(scheduler_random(), random.Random)


def test_seeding_the_scheduler_makes_its_choices_repeat() -> None:
    generator = scheduler_random()
    assert generator is not None
    assert seed_scheduler(42)
    first = [generator.random() for _ in range(5)]
    assert seed_scheduler(42)
    assert [generator.random() for _ in range(5)] == first
    assert seed_scheduler(43)
    assert [generator.random() for _ in range(5)] != first
