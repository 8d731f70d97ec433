"""Helpers the test modules share: test doubles that are too small for
``ciris_actors.testing`` and instruments that watch trio."""

from __future__ import annotations

import trio


class Plain:
    """A provider with no lifecycle hooks: routable the moment it is registered."""

    def __init__(self, label: str = "plain") -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


class TaskCounter(trio.abc.Instrument):
    """The tasks alive while installed (spawned after it was added, not yet exited)."""

    def __init__(self) -> None:
        self.live: set[trio.lowlevel.Task] = set()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live.discard(task)
