"""The exceptions of the public contract.

What to catch, as a tree::

    Exception
    +-- RegistryError                  anything the registry raises on purpose
        +-- CircuitBreakerError        a breaker refused a call (name, state, when next)
        +-- NoServiceAvailable         no provider could serve (every skip and attempt)
        +-- DuplicateProviderError     a name already registered (also a ValueError)
        +-- UnknownProviderError       no provider by that name (also a LookupError)
        +-- RetryBudgetExhausted       the retry budget refused a failover attempt

Bad arguments raise the built-in ``TypeError`` / ``ValueError`` naming the field.

Pure: imports neither trio nor the actors.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ._types import CircuitState

__all__ = [
    "Attempt",
    "CircuitBreakerError",
    "DuplicateProviderError",
    "NoServiceAvailable",
    "RegistryError",
    "RetryBudgetExhausted",
    "Skip",
    "UnknownProviderError",
]


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class CircuitBreakerError(RegistryError):
    """A circuit breaker refused a call.

    Attributes:
      name: the breaker's name.
      state: its state when it refused.
      next_attempt_time: when it will next admit a call (``None`` if it would admit now
        but its half-open probe quota is used up, or if it is disabled).
      disabled: why it is disabled (it will not admit by itself), or ``None``.
    """

    def __init__(
        self,
        name: str,
        state: CircuitState,
        next_attempt_time: float | None,
        disabled: str | None = None,
    ) -> None:
        self.name = name
        self.state = state
        self.next_attempt_time = next_attempt_time
        self.disabled = disabled
        if disabled is not None:
            when = f"; disabled: {disabled}"
        elif next_attempt_time is not None:
            when = f"; next admission at t={next_attempt_time:.3f}"
        else:
            when = "; half-open probe quota in use"
        super().__init__(f"circuit breaker {name!r} is {state.value}, service unavailable{when}")


class RetryBudgetExhausted(RegistryError):
    """The registry's retry budget refused a failover attempt of ``Registry.call`` (the
    error of its last :class:`Attempt`, whose outcome is ``"budget"``)."""


class DuplicateProviderError(RegistryError, ValueError):
    """A provider was registered under a name that is already taken."""


class UnknownProviderError(RegistryError, LookupError):
    """A method was given a provider name that is not registered."""


@attrs.frozen
class Skip:
    """Why one candidate was not chosen (in :class:`NoServiceAvailable` and ``explain``)."""

    name: str
    reason: str


@attrs.frozen
class Attempt:
    """One provider that :meth:`Registry.call` tried, the error it raised, and what the
    error was classified as (``"failure"``, ``"rate_limited"``, ``"disabled"``,
    ``"rerouted"`` or ``"timeout"``)."""

    name: str
    error: BaseException
    outcome: str = "failure"


class NoServiceAvailable(RegistryError):
    """No provider could serve the request.

    Attributes:
      handler: the handler that asked.
      service_type: the service type asked for.
      required_capabilities: the capabilities asked for.
      skipped: every candidate not chosen, in selection order, with the reason.
      attempts: for :meth:`Registry.call`, every provider tried and its error.
      retry_after: seconds until the earliest skipped candidate's breaker will admit
        again by itself (``None`` when none will: each is disabled, unroutable, lacks a
        capability, or waits for a half-open probe to come back).
    """

    def __init__(
        self,
        handler: str,
        service_type: str,
        required_capabilities: frozenset[str] = frozenset(),
        skipped: Sequence[Skip] = (),
        attempts: Sequence[Attempt] = (),
        retry_after: float | None = None,
    ) -> None:
        self.handler = handler
        self.retry_after = retry_after
        self.service_type = service_type
        self.required_capabilities = required_capabilities
        self.skipped = tuple(skipped)
        self.attempts = tuple(attempts)
        super().__init__(self._message())

    def _message(self) -> str:
        caps = (
            f" with capabilities {sorted(self.required_capabilities)}"
            if self.required_capabilities
            else ""
        )
        head = f"no {self.service_type!r} service available for handler {self.handler!r}{caps}"
        parts = [
            f"{a.name}: {_ATTEMPT_WORDS.get(a.outcome, a.outcome)}"
            f" ({type(a.error).__name__}: {a.error})"
            for a in self.attempts
        ]
        parts += [f"{s.name}: {s.reason}" for s in self.skipped]
        if not parts:
            return head + " (no provider is registered for it)"
        tail = (
            f"; the earliest admits again in {self.retry_after:.3g} s"
            if self.retry_after is not None
            else ""
        )
        return head + "; candidates: " + "; ".join(parts) + tail


#: How an attempt's outcome reads in :class:`NoServiceAvailable`'s message.
_ATTEMPT_WORDS = {
    "failure": "failed",
    "timeout": "timed out",
    "rate_limited": "rate limited",
    "disabled": "disabled",
    "rerouted": "needs more capabilities",
    "budget": "not tried: retry budget spent",
}
