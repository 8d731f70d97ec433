"""The exceptions of the public contract (``_errors.py``): what each carries, and the
message a person reads in a log."""

from __future__ import annotations

import pytest

from ciris_actors import (
    Attempt,
    CircuitBreakerError,
    CircuitState,
    DuplicateProviderError,
    NoServiceAvailable,
    RegistryError,
    Skip,
    UnknownProviderError,
)


def test_circuit_breaker_error_says_when_an_open_breaker_admits_again() -> None:
    error = CircuitBreakerError("llm-a", CircuitState.OPEN, 12.5)
    assert (error.name, error.state, error.next_attempt_time) == ("llm-a", CircuitState.OPEN, 12.5)
    assert str(error) == (
        "circuit breaker 'llm-a' is open, service unavailable; next admission at t=12.500"
    )


def test_circuit_breaker_error_says_a_full_half_open_quota_is_why() -> None:
    error = CircuitBreakerError("llm-a", CircuitState.HALF_OPEN, None)
    assert error.next_attempt_time is None
    assert str(error) == (
        "circuit breaker 'llm-a' is half_open, service unavailable; half-open probe quota in use"
    )


def test_circuit_breaker_error_says_why_a_disabled_breaker_refused() -> None:
    error = CircuitBreakerError("llm-a", CircuitState.OPEN, None, disabled="401 Unauthorized")
    assert (error.next_attempt_time, error.disabled) == (None, "401 Unauthorized")
    assert str(error) == (
        "circuit breaker 'llm-a' is open, service unavailable; disabled: 401 Unauthorized"
    )
    assert CircuitBreakerError("llm-a", CircuitState.OPEN, 12.5).disabled is None


def test_no_service_available_carries_the_request_and_every_candidate() -> None:
    failure = RuntimeError("boom")
    error = NoServiceAvailable(
        "H",
        "llm",
        frozenset({"vision", "chat"}),
        skipped=[Skip("b", "actor failed"), Skip("c", "circuit open for another 52 s")],
        attempts=[Attempt("a", failure)],
    )
    assert (error.handler, error.service_type) == ("H", "llm")
    assert error.required_capabilities == frozenset({"vision", "chat"})
    assert error.skipped == (Skip("b", "actor failed"), Skip("c", "circuit open for another 52 s"))
    assert error.attempts == (Attempt("a", failure),)
    assert str(error) == (
        "no 'llm' service available for handler 'H' with capabilities ['chat', 'vision'];"
        " candidates: a: failed (RuntimeError: boom); b: actor failed;"
        " c: circuit open for another 52 s"
    )


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("failure", "failed"),
        ("timeout", "timed out"),
        ("rate_limited", "rate limited"),
        ("disabled", "disabled"),
        ("rerouted", "needs more capabilities"),
        ("refused by policy", "refused by policy"),  # not one of the five: as it is
    ],
)
def test_no_service_available_says_each_attempt_outcome_in_words(outcome: str, words: str) -> None:
    error = NoServiceAvailable("H", "llm", attempts=[Attempt("a", KeyError("k"), outcome)])
    assert str(error) == (
        f"no 'llm' service available for handler 'H'; candidates: a: {words} (KeyError: 'k')"
    )


def test_no_service_available_says_when_the_earliest_candidate_admits_again() -> None:
    skipped = [Skip("a", "circuit open for another 12 s"), Skip("b", "actor failed")]
    error = NoServiceAvailable("H", "llm", skipped=skipped, retry_after=12.3456)
    assert error.retry_after == 12.3456
    assert str(error) == (
        "no 'llm' service available for handler 'H'; candidates:"
        " a: circuit open for another 12 s; b: actor failed; the earliest admits again in 12.3 s"
    )
    assert str(NoServiceAvailable("H", "llm", skipped=skipped)).endswith("b: actor failed")


def test_no_service_available_without_candidates_says_nothing_is_registered() -> None:
    error = NoServiceAvailable("H", "memory")
    assert (error.skipped, error.attempts) == ((), ())
    assert str(error) == (
        "no 'memory' service available for handler 'H' (no provider is registered for it)"
    )


@pytest.mark.parametrize(
    ("error", "also"),
    [
        (CircuitBreakerError("x", CircuitState.OPEN, 1.0), RegistryError),
        (NoServiceAvailable("H", "llm"), RegistryError),
        (DuplicateProviderError("x"), ValueError),
        (UnknownProviderError("x"), LookupError),
    ],
)
def test_every_error_is_a_registry_error_and_what_else_it_promises(
    error: Exception, also: type[Exception]
) -> None:
    assert isinstance(error, RegistryError)
    assert isinstance(error, also)
