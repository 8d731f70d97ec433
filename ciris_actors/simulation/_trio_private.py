"""The one place the simulation touches a private trio name.

trio shuffles each batch of runnable tasks with a module-level random generator (to keep
code from depending on scheduling order). Seeding it makes the order, and so a whole
simulated run, a function of the seed. If the name disappears, runs stay correct but may
stop being byte-identical from one run to the next; ``tests/test_trio_private.py``
notices, and the determinism tests would too.

Nothing here is needed for speed: both engines run on trio's public API alone.
"""

from __future__ import annotations

import random

import trio

__all__ = ["scheduler_random", "seed_scheduler"]


def scheduler_random() -> random.Random | None:
    """trio's scheduler random generator, or ``None`` if this trio has none by that name."""
    run_module = getattr(getattr(trio, "_core", None), "_run", None)
    generator = getattr(run_module, "_r", None)
    return generator if isinstance(generator, random.Random) else None


def seed_scheduler(seed: int) -> bool:
    """Make trio's task scheduling order reproducible for the next run.

    Returns:
      Whether trio's generator was found and seeded (``False``: the run is still
      correct, but two runs of one seed may schedule ties differently).
    """
    generator = scheduler_random()
    if generator is None:
        return False
    generator.seed(seed)
    return True
