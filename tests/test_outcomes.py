"""ErrorClass, classify() and the HTTP classifier, against fakes shaped like the errors of
httpx, the openai and anthropic clients and aiohttp (none of them is a dependency)."""

from __future__ import annotations

import email.utils
import math
from typing import Any

import pytest

from ciris_actors.outcomes import (
    ErrorClass,
    ErrorKind,
    classify,
    classify_http,
    http_classifier,
)

NOW = 1_800_000_000.0  # the wall clock the date tests run at


# -- fakes shaped like the real clients' errors ----------------------------------------------


class FakeHeaders:
    """Like httpx.Headers: case-insensitive ``get``."""

    def __init__(self, items: dict[str, str]) -> None:
        self._items = {k.lower(): v for k, v in items.items()}

    def get(self, name: str, default: Any = None) -> Any:
        return self._items.get(name.lower(), default)


class FakeResponse:
    """Like httpx.Response: ``status_code`` and ``headers``."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = FakeHeaders(headers or {})


class HTTPStatusError(Exception):
    """Like httpx.HTTPStatusError: the status is on ``response`` only."""

    def __init__(self, message: str, response: FakeResponse) -> None:
        super().__init__(message)
        self.response = response


class APIStatusError(Exception):
    """Like openai.APIStatusError / anthropic.APIStatusError: ``status_code``,
    ``response``, ``body``, and for openai a ``code``."""

    def __init__(
        self,
        message: str,
        status_code: int,
        headers: dict[str, str] | None = None,
        body: object = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = FakeResponse(status_code, headers)
        self.body = body
        self.code = code


class ClientResponseError(Exception):
    """Like aiohttp.ClientResponseError: ``status`` and ``headers`` on the error."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(f"{status}")
        self.status = status
        self.headers = headers


class APITimeoutError(Exception):
    """Like openai.APITimeoutError: no status."""


class ConnectError(Exception):
    """Like httpx.ConnectError: no status."""


def status(code: int, headers: dict[str, str] | None = None, message: str = "boom") -> Exception:
    return APIStatusError(message, code, headers)


# -- ErrorClass ------------------------------------------------------------------------------


def test_error_classes_say_what_they_mean() -> None:
    assert ErrorClass.failure().kind is ErrorKind.FAILURE
    assert ErrorClass.ignore().kind is ErrorKind.IGNORE
    assert ErrorClass.success().kind is ErrorKind.SUCCESS
    assert ErrorClass.rate_limited(30).retry_after == 30.0
    assert ErrorClass.rate_limited().retry_after is None
    assert ErrorClass.disable("key revoked").reason == "key revoked"
    assert ErrorClass.reroute(["long_context"]).require == frozenset({"long_context"})
    assert str(ErrorClass.rate_limited(2.5)) == "rate_limited (retry after 2.5 s)"
    assert str(ErrorClass.reroute(["b", "a"])) == "reroute (needs a, b)"
    assert ErrorClass.failure() == ErrorClass(ErrorKind.FAILURE)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        pytest.param(
            lambda: ErrorClass.rate_limited(-1), ValueError, "retry_after: must be", id="negative"
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited(math.nan), ValueError, "retry_after", id="nan"
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited(math.inf), ValueError, "retry_after", id="inf"
        ),
        pytest.param(lambda: ErrorClass.rate_limited(10**400), ValueError, "too large", id="huge"),
        pytest.param(
            lambda: ErrorClass.rate_limited("5"),  # type: ignore[arg-type]
            TypeError,
            "retry_after: expected",
            id="str",
        ),
        pytest.param(lambda: ErrorClass.rate_limited(True), TypeError, "retry_after", id="bool"),
        pytest.param(
            lambda: ErrorClass.disable(""), ValueError, "reason: must say why", id="empty"
        ),
        pytest.param(
            lambda: ErrorClass.disable(None),  # type: ignore[arg-type]
            TypeError,
            "reason: expected",
            id="none",
        ),
        pytest.param(lambda: ErrorClass.reroute("long_context"), TypeError, "require", id="bare"),
        pytest.param(lambda: ErrorClass.reroute([]), ValueError, "require: name at", id="nothing"),
    ],
)
def test_bad_error_classes_are_refused_naming_the_field(
    build: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build()


# -- classify() ------------------------------------------------------------------------------


def test_the_first_classifier_with_an_opinion_wins_and_none_means_failure() -> None:
    error = ValueError("x")
    assert classify(error) == ErrorClass.failure()
    assert classify(error, None, lambda e: None) == ErrorClass.failure()
    assert classify(error, lambda e: None, lambda e: ErrorClass.ignore()) == ErrorClass.ignore()
    assert (
        classify(error, lambda e: ErrorClass.success(), lambda e: ErrorClass.ignore())
        == ErrorClass.success()
    )


def test_a_classifier_that_raises_counts_the_error_as_a_failure_with_a_note() -> None:
    def broken(error: BaseException) -> ErrorClass | None:
        raise KeyError("oops")

    error = RuntimeError("provider said no")
    assert classify(error, broken, lambda e: ErrorClass.ignore()) == ErrorClass.failure()
    assert error.__notes__ == [
        "ciris_actors: the classifier test_a_classifier_that_raises_counts_the_error_as_a_"
        "failure_with_a_note.<locals>.broken raised KeyError: 'oops'; the error counted as a"
        " failure"
    ]


def test_a_classifier_that_answers_nonsense_counts_as_a_failure_with_a_note() -> None:
    error = RuntimeError("x")
    assert classify(error, lambda e: "ignore") == ErrorClass.failure()  # type: ignore[arg-type,return-value]
    assert "returned 'ignore', not an ErrorClass or None" in error.__notes__[0]


# -- the HTTP classifier ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (status(429, {"retry-after": "20"}), ErrorClass.rate_limited(20)),
        (status(429, {"Retry-After": "1.5"}), ErrorClass.rate_limited(1.5)),
        (status(429, {"retry-after-ms": "2500", "retry-after": "9"}), ErrorClass.rate_limited(2.5)),
        (status(429), ErrorClass.rate_limited()),
        (status(503, {"retry-after": "7"}), ErrorClass.rate_limited(7)),
        (status(529, {"retry-after": "7"}), ErrorClass.rate_limited(7)),
        (status(503), ErrorClass.failure()),
        (status(500), ErrorClass.failure()),
        (status(502), ErrorClass.failure()),
        (status(408), ErrorClass.failure()),
        (status(400), ErrorClass.ignore()),
        (status(404), ErrorClass.ignore()),
        (status(422), ErrorClass.ignore()),
        (APITimeoutError("timed out"), ErrorClass.failure()),
        (ConnectError("refused"), ErrorClass.failure()),
        (TimeoutError(), ErrorClass.failure()),
        (ConnectionResetError(), ErrorClass.failure()),
        (ValueError("not http at all"), None),
    ],
)
def test_the_ready_classifier_maps_statuses_and_transport_errors(
    error: Exception, expected: ErrorClass | None
) -> None:
    assert classify_http(error) == expected


@pytest.mark.parametrize("code", [401, 403])
def test_a_revoked_key_disables_the_provider_saying_why(code: int) -> None:
    verdict = classify_http(status(code, message="Incorrect API key provided: sk-...xyz"))
    assert verdict is not None
    assert verdict.kind is ErrorKind.DISABLE
    assert verdict.reason == f"HTTP {code}: Incorrect API key provided: sk-...xyz"


def test_the_status_is_found_where_each_client_puts_it() -> None:
    httpx_error = HTTPStatusError("429 Too Many", FakeResponse(429, {"Retry-After": "3"}))
    aiohttp_error = ClientResponseError(429, {"Retry-After": "4"})
    assert classify_http(httpx_error) == ErrorClass.rate_limited(3)
    assert classify_http(aiohttp_error) == ErrorClass.rate_limited(4)


def test_a_retry_after_date_is_turned_into_seconds_on_the_given_clock() -> None:
    classify_at_now = http_classifier(clock=lambda: NOW)
    date = email.utils.formatdate(NOW + 90, usegmt=True)
    assert classify_at_now(status(429, {"Retry-After": date})) == ErrorClass.rate_limited(90)
    past = email.utils.formatdate(NOW - 90, usegmt=True)
    assert classify_at_now(status(429, {"Retry-After": past})) == ErrorClass.rate_limited(0)


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf", "-inf", "Tue, 99 Foo 2026"])
def test_a_retry_after_that_makes_no_sense_falls_back_to_the_breaker_s_own(value: str) -> None:
    assert classify_http(status(429, {"Retry-After": value})) == ErrorClass.rate_limited()


def test_a_huge_or_negative_retry_after_is_kept_within_bounds() -> None:
    assert classify_http(status(429, {"Retry-After": "1e12"})) == ErrorClass.rate_limited(3600)
    assert classify_http(status(429, {"Retry-After": "-5"})) == ErrorClass.rate_limited(0)
    short = http_classifier(max_retry_after=60.0)
    assert short(status(429, {"Retry-After": "600"})) == ErrorClass.rate_limited(60)


@pytest.mark.parametrize(
    "error",
    [
        APIStatusError(
            "This model's maximum context length is 8192 tokens.",
            400,
            code="context_length_exceeded",
        ),
        APIStatusError(
            "Error code: 400",
            400,
            body={
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "prompt is too long: 250000 tokens > 200000 maximum",
                },
            },
        ),
        APIStatusError("input is too long for requested model", 413),
    ],
    ids=["openai", "anthropic", "413"],
)
def test_a_context_overflow_reroutes_when_asked_and_is_a_bad_request_otherwise(
    error: Exception,
) -> None:
    rerouting = http_classifier(context_overflow=["long_context"])
    assert rerouting(error) == ErrorClass.reroute(["long_context"])
    assert classify_http(error) == ErrorClass.ignore()


def test_an_ordinary_bad_request_is_not_mistaken_for_an_overflow() -> None:
    rerouting = http_classifier(context_overflow=["long_context"])
    assert rerouting(status(400, message="messages: field required")) == ErrorClass.ignore()


def test_headers_that_misbehave_are_no_retry_after() -> None:
    class Hostile:
        def get(self, name: str) -> Any:
            raise RuntimeError("no")

    error = status(429)
    error.response.headers = Hostile()  # type: ignore[attr-defined]
    assert classify_http(error) == ErrorClass.rate_limited()


def test_the_http_classifier_refuses_bad_settings() -> None:
    with pytest.raises(TypeError, match="require"):
        http_classifier(context_overflow="long_context")
    with pytest.raises(ValueError, match="max_retry_after"):
        http_classifier(max_retry_after=-1)
