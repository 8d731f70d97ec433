"""ErrorClass, classify() and the HTTP classifier, against the errors of httpx (a test
dependency) and urllib, and fakes shaped like the errors of the openai and anthropic clients
and aiohttp (none of them is a dependency).

The HTTP classifier is built afresh in most tests (``http_classifier()``), and the ready
``classify_http`` is checked to answer the same."""

from __future__ import annotations

import email.message
import email.utils
import math
import re
import urllib.error
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings, strategies as st

from ciris_actors.outcomes import (
    Classifier,
    ErrorClass,
    ErrorKind,
    classify,
    classify_http,
    http_classifier,
)

NOW = 1_800_000_000.0  # the wall clock the date tests run at
URL = "https://api.example/v1/chat/completions"
SETTINGS = settings(max_examples=200, deadline=None)


def exactly(message: str) -> str:
    """A ``pytest.raises(match=...)`` pattern for this whole message and nothing else."""
    return f"^{re.escape(message)}$"


# -- the errors of the clients ----------------------------------------------------------------


def response(status_code: int, headers: dict[str, str] | None = None) -> httpx.Response:
    """An httpx response, as the openai and anthropic clients' errors carry too."""
    return httpx.Response(status_code, headers=headers, request=httpx.Request("POST", URL))


def httpx_error(status_code: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    """The error httpx's ``raise_for_status`` raises: the status is on ``response`` only."""
    try:
        response(status_code, headers).raise_for_status()
    except httpx.HTTPStatusError as error:
        return error
    raise AssertionError(f"httpx raised nothing for {status_code}")


def urllib_error(code: int, headers: dict[str, str]) -> urllib.error.HTTPError:
    """urllib's HTTPError: ``status`` on the error, headers an ``email.message.Message``
    (not a mapping: only its ``get`` ignores case)."""
    message = email.message.Message()
    for name, value in headers.items():
        message[name] = value
    return urllib.error.HTTPError(URL, code, "error", message, None)


class APIStatusError(Exception):
    """Like openai.APIStatusError and anthropic.APIStatusError: ``status_code``, the httpx
    ``response``, the decoded JSON ``body``, and (openai) ``code`` and ``type``."""

    def __init__(
        self,
        message: str,
        status_code: int,
        headers: dict[str, str] | None = None,
        *,
        body: object = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response(status_code, headers)
        self.body = body
        self.code = code
        self.type = type


class ClientResponseError(Exception):
    """Like aiohttp.ClientResponseError: ``status`` and ``headers`` on the error itself."""

    def __init__(self, status: int, headers: Any = None) -> None:
        super().__init__(f"{status}, message='error', url='{URL}'")
        self.status = status
        self.headers = headers


class WithStatus(Exception):
    """An error with an arbitrary ``status_code`` and nothing else."""

    def __init__(self, status_code: object) -> None:
        super().__init__("boom")
        self.status_code = status_code


class ReadTimeoutWithStatus(WithStatus):
    """The same, with a type name that says timeout."""


class APITimeoutError(Exception):
    """Like openai.APITimeoutError: no status."""


class APIConnectionError(Exception):
    """Like openai.APIConnectionError: no status."""


def status(code: int, headers: dict[str, str] | None = None, message: str = "boom") -> Exception:
    return APIStatusError(message, code, headers)


def judge(error: BaseException, **options: Any) -> ErrorClass | None:
    """What a freshly built HTTP classifier says; with no options, the ready one must say
    the same."""
    verdict = http_classifier(**options)(error)
    if not options:
        assert classify_http(error) == verdict
    return verdict


# -- ErrorClass ------------------------------------------------------------------------------


def test_error_classes_say_what_they_mean() -> None:
    assert ErrorClass.failure() == ErrorClass(ErrorKind.FAILURE)
    assert ErrorClass.ignore() == ErrorClass(ErrorKind.IGNORE)
    assert ErrorClass.success() == ErrorClass(ErrorKind.SUCCESS)
    assert ErrorClass.rate_limited(30) == ErrorClass(ErrorKind.RATE_LIMITED, retry_after=30.0)
    assert isinstance(ErrorClass.rate_limited(30).retry_after, float)
    assert ErrorClass.rate_limited(0).retry_after == 0.0
    assert ErrorClass.rate_limited() == ErrorClass(ErrorKind.RATE_LIMITED)
    assert ErrorClass.disable("key revoked") == ErrorClass(ErrorKind.DISABLE, reason="key revoked")
    assert ErrorClass.reroute(["long_context", "vision"]) == ErrorClass(
        ErrorKind.REROUTE, require=frozenset({"long_context", "vision"})
    )
    assert [kind.value for kind in ErrorKind] == [
        "failure",
        "ignore",
        "success",
        "rate_limited",
        "disable",
        "reroute",
    ]


@pytest.mark.parametrize(
    ("verdict", "text"),
    [
        (ErrorClass.failure(), "failure"),
        (ErrorClass.ignore(), "ignore"),
        (ErrorClass.success(), "success"),
        (ErrorClass.rate_limited(), "rate_limited"),
        (ErrorClass.rate_limited(2.5), "rate_limited (retry after 2.5 s)"),
        (ErrorClass.rate_limited(0), "rate_limited (retry after 0 s)"),
        (ErrorClass.disable("key revoked"), "disable (key revoked)"),
        (ErrorClass.reroute(["vision", "long_context"]), "reroute (needs long_context, vision)"),
        # A retry_after means something for rate_limited only.
        (ErrorClass(ErrorKind.FAILURE, retry_after=5.0), "failure"),
    ],
)
def test_str_of_an_error_class_names_its_kind_and_what_goes_with_it(
    verdict: ErrorClass, text: str
) -> None:
    assert str(verdict) == text


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        pytest.param(
            lambda: ErrorClass.rate_limited(-1),
            ValueError,
            "retry_after: must be a finite number >= 0, got -1",
            id="negative",
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited(math.nan),
            ValueError,
            "retry_after: must be a finite number >= 0, got nan",
            id="nan",
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited(math.inf),
            ValueError,
            "retry_after: must be a finite number >= 0, got inf",
            id="inf",
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited(10**400),
            ValueError,
            "retry_after: must be finite, got an int too large for a float",
            id="huge",
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited("5"),  # type: ignore[arg-type]
            TypeError,
            "retry_after: expected a number of seconds, got str",
            id="str",
        ),
        pytest.param(
            lambda: ErrorClass.rate_limited(True),
            TypeError,
            "retry_after: expected a number of seconds, got bool",
            id="bool",
        ),
        pytest.param(
            lambda: ErrorClass.disable(""),
            ValueError,
            "reason: must say why (got an empty string)",
            id="empty",
        ),
        pytest.param(
            lambda: ErrorClass.disable(" \n"),
            ValueError,
            "reason: must say why (got an empty string)",
            id="blank",
        ),
        pytest.param(
            lambda: ErrorClass.disable(401),  # type: ignore[arg-type]
            TypeError,
            "reason: expected a string, got int",
            id="int",
        ),
        pytest.param(
            lambda: ErrorClass.reroute("long_context"),
            TypeError,
            "require: expected an iterable of strings, got a bare string 'long_context'",
            id="bare",
        ),
        pytest.param(
            lambda: ErrorClass.reroute([1]),  # type: ignore[list-item]
            TypeError,
            "require: every capability must be a str, got 1",
            id="not-str",
        ),
        pytest.param(
            lambda: ErrorClass.reroute([]),
            ValueError,
            "require: name at least one capability the request needs",
            id="nothing",
        ),
    ],
)
def test_bad_error_classes_are_refused_naming_the_argument(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=exactly(message)):
        build()


# -- classify() ------------------------------------------------------------------------------


def test_the_first_classifier_with_an_opinion_wins_and_none_means_failure() -> None:
    error = KeyError("x")
    assert classify(error) == ErrorClass.failure()
    assert classify(error, None, lambda e: None) == ErrorClass.failure()
    assert classify(error, None, lambda e: ErrorClass.ignore()) == ErrorClass.ignore()
    assert classify(error, lambda e: None, lambda e: ErrorClass.ignore()) == ErrorClass.ignore()
    assert (
        classify(error, lambda e: ErrorClass.success(), lambda e: ErrorClass.ignore())
        == ErrorClass.success()
    )
    assert not hasattr(error, "__notes__")


def test_each_classifier_is_asked_about_the_error_itself() -> None:
    def lookups_are_ignored(error: BaseException) -> ErrorClass | None:
        return ErrorClass.ignore() if isinstance(error, KeyError) else None

    assert classify(KeyError("x"), lookups_are_ignored) == ErrorClass.ignore()
    assert classify(OSError("x"), lookups_are_ignored) == ErrorClass.failure()


verdicts = st.one_of(
    st.none(),
    st.sampled_from(
        [
            ErrorClass.failure(),
            ErrorClass.ignore(),
            ErrorClass.success(),
            ErrorClass.rate_limited(3),
            ErrorClass.disable("revoked"),
            ErrorClass.reroute(["long_context"]),
        ]
    ),
)


def answering(verdict: ErrorClass | None) -> Classifier:
    return lambda error: verdict


@SETTINGS
@given(answers=st.lists(st.tuples(st.booleans(), verdicts), max_size=6))
def test_classify_answers_the_first_verdict_that_is_not_none_else_failure(
    answers: list[tuple[bool, ErrorClass | None]],
) -> None:
    """Each answer is a classifier (or, when the flag is off, a None entry that is skipped)."""
    classifiers = [answering(verdict) if present else None for present, verdict in answers]
    given_verdicts = [verdict for present, verdict in answers if present]
    expected = next((v for v in given_verdicts if v is not None), ErrorClass.failure())
    assert classify(RuntimeError("x"), *classifiers) == expected


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
    def stringly(error: BaseException) -> Any:
        return "ignore"

    error = RuntimeError("x")
    assert classify(error, stringly, lambda e: ErrorClass.ignore()) == ErrorClass.failure()
    assert error.__notes__ == [
        "ciris_actors: the classifier test_a_classifier_that_answers_nonsense_counts_as_a_failure"
        "_with_a_note.<locals>.stringly returned 'ignore', not an ErrorClass or None; the error"
        " counted as a failure"
    ]


class StatusTable:
    """A classifier object: it has no ``__qualname__``, so notes name it by its repr."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def __call__(self, error: BaseException) -> Any:
        if self.answer is None:
            raise LookupError("no row")
        return self.answer

    def __repr__(self) -> str:
        return "<StatusTable>"


def test_a_classifier_without_a_qualified_name_is_named_by_its_repr_in_the_note() -> None:
    raised = RuntimeError("x")
    assert classify(raised, StatusTable(None)) == ErrorClass.failure()
    assert raised.__notes__ == [
        "ciris_actors: the classifier <StatusTable> raised LookupError: no row; the error"
        " counted as a failure"
    ]
    answered = RuntimeError("x")
    assert classify(answered, StatusTable(3)) == ErrorClass.failure()
    assert answered.__notes__ == [
        "ciris_actors: the classifier <StatusTable> returned 3, not an ErrorClass or None;"
        " the error counted as a failure"
    ]


# -- the HTTP classifier: statuses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (status(429, {"retry-after": "20"}), ErrorClass.rate_limited(20)),
        (status(429, {"Retry-After": "1.5"}), ErrorClass.rate_limited(1.5)),
        (status(429), ErrorClass.rate_limited()),
        (status(503, {"retry-after": "7"}), ErrorClass.rate_limited(7)),
        (status(529, {"retry-after": "7"}), ErrorClass.rate_limited(7)),
        # Without a Retry-After a 503 or 529 is a failure, not a rate limit.
        (status(503), ErrorClass.failure()),
        (status(529), ErrorClass.failure()),
        (status(500), ErrorClass.failure()),
        (status(502), ErrorClass.failure()),
        (status(504), ErrorClass.failure()),
        (status(599), ErrorClass.failure()),
        (status(408), ErrorClass.failure()),
        (status(400), ErrorClass.ignore()),
        (status(402), ErrorClass.ignore()),
        (status(404), ErrorClass.ignore()),
        (status(409), ErrorClass.ignore()),
        (status(413), ErrorClass.ignore()),
        (status(422), ErrorClass.ignore()),
        (status(499), ErrorClass.ignore()),
        # A redirect or any other answer under 400: no opinion.
        (status(100), None),
        (status(200), None),
        (status(301), None),
        (status(304), None),
        (status(399), None),
    ],
    ids=lambda value: str(getattr(value, "status_code", value)),
)
def test_statuses_map_to_what_they_mean(error: Exception, expected: ErrorClass | None) -> None:
    assert judge(error) == expected


@pytest.mark.parametrize(
    "error",
    [
        APITimeoutError("Request timed out."),
        APIConnectionError("Connection error."),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("[Errno 111] Connection refused"),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_timeout_or_connection_error_without_a_status_is_a_failure(error: Exception) -> None:
    assert judge(error) == ErrorClass.failure()


@pytest.mark.parametrize(
    "error", [ValueError("not http at all"), httpx.DecodingError("bad gzip"), KeyError("x")]
)
def test_other_errors_without_a_status_get_no_opinion(error: Exception) -> None:
    assert judge(error) is None


def test_the_status_is_found_where_each_client_puts_it() -> None:
    assert judge(httpx_error(429, {"Retry-After": "3"})) == ErrorClass.rate_limited(3)
    assert judge(ClientResponseError(429, {"Retry-After": "4"})) == ErrorClass.rate_limited(4)
    assert judge(urllib_error(429, {"Retry-After": "5"})) == ErrorClass.rate_limited(5)
    assert judge(status(429, {"Retry-After": "6"})) == ErrorClass.rate_limited(6)


@SETTINGS
@given(code=st.integers(100, 599))
@example(code=100)
@example(code=599)
def test_an_error_with_a_status_is_judged_by_the_status_not_by_its_type_name(code: int) -> None:
    assert judge(ReadTimeoutWithStatus(code)) == judge(WithStatus(code))


@SETTINGS
@given(
    value=st.one_of(
        st.integers().filter(lambda n: not 100 <= n <= 599),
        st.booleans(),
        st.just("429"),
        st.just(429.0),
    )
)
@example(value=0)  # aiohttp's status when there was none
@example(value=99)
@example(value=600)
def test_a_status_that_is_not_an_int_from_100_to_599_is_no_status(value: object) -> None:
    assert judge(WithStatus(value)) is None
    assert judge(ReadTimeoutWithStatus(value)) == ErrorClass.failure()


@pytest.mark.parametrize("code", [401, 403])
def test_a_revoked_key_disables_the_provider_saying_why(code: int) -> None:
    verdict = judge(status(code, message="Incorrect API key provided: sk-...xyz"))
    assert verdict == ErrorClass.disable(f"HTTP {code}: Incorrect API key provided: sk-...xyz")


def test_the_reason_for_disabling_is_the_first_line_of_the_message_cut_to_120() -> None:
    assert judge(httpx_error(401)) == ErrorClass.disable(
        f"HTTP 401: Client error '401 Unauthorized' for url '{URL}'"
    )
    long = "x" * 119 + "yz"
    assert judge(status(403, message=long)) == ErrorClass.disable(f"HTTP 403: {long[:120]}")
    assert judge(status(403, message="  \n ")) == ErrorClass.disable("HTTP 403: APIStatusError")


# -- the HTTP classifier: Retry-After -----------------------------------------------------------


@SETTINGS
@given(
    spelling=st.lists(st.booleans(), min_size=len("retry-after"), max_size=len("retry-after")),
    milliseconds=st.booleans(),
)
def test_a_retry_after_header_is_found_whatever_the_case_of_its_name(
    spelling: list[bool], milliseconds: bool
) -> None:
    name = "".join(c.upper() if up else c for c, up in zip("retry-after", spelling, strict=True))
    name, value, seconds = (name + "-MS", "4500", 4.5) if milliseconds else (name, "45", 45.0)
    expected = ErrorClass.rate_limited(seconds)
    assert judge(ClientResponseError(429, {name: value})) == expected  # a dict
    assert judge(httpx_error(429, {name: value})) == expected  # httpx.Headers
    assert judge(urllib_error(429, {name: value})) == expected  # an email Message


def test_retry_after_ms_is_in_milliseconds_and_wins_over_retry_after() -> None:
    headers = {"retry-after-ms": "2500", "retry-after": "9"}
    assert judge(status(429, headers)) == ErrorClass.rate_limited(2.5)
    assert judge(ClientResponseError(429, headers)) == ErrorClass.rate_limited(2.5)
    assert judge(status(503, headers)) == ErrorClass.rate_limited(2.5)
    assert judge(status(429, {"retry-after-ms": "250"})) == ErrorClass.rate_limited(0.25)
    assert judge(status(429, {"retry-after-ms": "-250"})) == ErrorClass.rate_limited(0)
    assert judge(status(429, {"retry-after-ms": "1e12"})) == ErrorClass.rate_limited(3600)
    # Nonsense in milliseconds: the Retry-After in seconds is asked instead.
    assert judge(status(429, {"retry-after-ms": "soon", "retry-after": "9"})) == (
        ErrorClass.rate_limited(9)
    )
    assert judge(ClientResponseError(429, {"Retry-After-Ms": "nan", "Retry-After": "9"})) == (
        ErrorClass.rate_limited(9)
    )


@pytest.mark.parametrize("code", [429, 503, 529])
def test_a_retry_after_date_is_turned_into_seconds_on_the_given_clock(code: int) -> None:
    def at(offset: float) -> dict[str, str]:
        return {"Retry-After": email.utils.formatdate(NOW + offset, usegmt=True)}

    assert judge(status(code, at(90)), clock=lambda: NOW) == ErrorClass.rate_limited(90)
    assert judge(ClientResponseError(code, at(90)), clock=lambda: NOW) == (
        ErrorClass.rate_limited(90)
    )
    # A date in the past: come back at once; one a day away: at most max_retry_after.
    assert judge(status(code, at(-90)), clock=lambda: NOW) == ErrorClass.rate_limited(0)
    assert judge(status(code, at(86_400)), clock=lambda: NOW, max_retry_after=600.0) == (
        ErrorClass.rate_limited(600)
    )


@pytest.mark.parametrize("value", ["soon", "", "  ", "nan", "inf", "-inf", "Tue, 99 Foo 2026"])
def test_a_retry_after_that_makes_no_sense_is_as_if_there_was_none(value: str) -> None:
    assert judge(status(429, {"Retry-After": value})) == ErrorClass.rate_limited()
    assert judge(status(503, {"Retry-After": value})) == ErrorClass.failure()


def test_a_retry_after_is_cut_to_an_hour_by_default_and_to_max_retry_after() -> None:
    assert judge(status(429, {"Retry-After": "3599"})) == ErrorClass.rate_limited(3599)
    assert judge(status(429, {"Retry-After": "1e12"})) == ErrorClass.rate_limited(3600)
    assert judge(status(503, {"Retry-After": "1e12"})) == ErrorClass.rate_limited(3600)
    assert judge(status(429, {"Retry-After": "-5"})) == ErrorClass.rate_limited(0)
    assert judge(status(429, {"Retry-After": "600"}), max_retry_after=60.0) == (
        ErrorClass.rate_limited(60)
    )
    assert judge(status(503, {"Retry-After": "600"}), max_retry_after=60.0) == (
        ErrorClass.rate_limited(60)
    )


@SETTINGS
@given(
    seconds=st.floats(allow_nan=False, allow_infinity=False),
    cap=st.floats(min_value=0.0, max_value=1e9),
)
def test_a_retry_after_in_seconds_is_kept_between_zero_and_max_retry_after(
    seconds: float, cap: float
) -> None:
    verdict = judge(status(429, {"Retry-After": repr(seconds)}), max_retry_after=cap)
    assert verdict is not None
    assert verdict.retry_after is not None
    assert 0.0 <= verdict.retry_after <= cap
    assert verdict.retry_after == min(cap, max(0.0, seconds))


class RaisingHeaders(Mapping[str, str]):
    """A mapping that fails when read."""

    def __getitem__(self, name: str) -> str:
        raise RuntimeError("no")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no")

    def __len__(self) -> int:
        return 1


class RaisingGet:
    """Headers with a ``get`` that fails."""

    def get(self, name: str) -> Any:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "headers",
    [RaisingHeaders(), RaisingGet(), {"Retry-After": 5}, object(), None],
    ids=["mapping", "get", "not-a-str", "no-get", "none"],
)
def test_headers_that_misbehave_or_are_missing_are_no_retry_after(headers: Any) -> None:
    assert judge(ClientResponseError(429, headers)) == ErrorClass.rate_limited()
    assert judge(ClientResponseError(503, headers)) == ErrorClass.failure()


# -- the HTTP classifier: context overflows -----------------------------------------------------

#: The markers the module's documentation promises, each as a server might word it.
MARKERS = [
    "context_length_exceeded",
    "This model's Maximum Context Length is 8192 tokens.",
    "The input exceeds the model's CONTEXT WINDOW",
    "requested context length too big",
    "Prompt is too long: 250000 tokens > 200000 maximum",
    "Input is too long for requested model.",
    "Too many tokens in request",
    "The request exceeds the context size of the model",
]


@pytest.mark.parametrize("message", MARKERS)
def test_each_context_overflow_marker_reroutes_when_asked_and_is_a_bad_request_otherwise(
    message: str,
) -> None:
    error = httpx.HTTPStatusError(
        message, request=httpx.Request("POST", URL), response=response(400)
    )
    assert judge(error, context_overflow=["long_context"]) == ErrorClass.reroute(["long_context"])
    assert judge(error) == ErrorClass.ignore()


GENERIC = "Invalid request"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            APIStatusError(
                "Error code: 400", 400, code="context_length_exceeded", body={"message": GENERIC}
            ),
            id="code",
        ),
        pytest.param(
            APIStatusError(
                "Error code: 400", 400, type="context_length_exceeded", body={"message": GENERIC}
            ),
            id="type",
        ),
        pytest.param(
            APIStatusError("Error code: 400", 400, body={"code": "context_length_exceeded"}),
            id="openai-body-code",
        ),
        pytest.param(
            APIStatusError("Error code: 400", 400, body={"type": "context_length_exceeded"}),
            id="openai-body-type",
        ),
        pytest.param(
            APIStatusError(
                "Error code: 400",
                400,
                body={
                    "message": "This model's maximum context length is 8192 tokens.",
                    "type": "invalid_request_error",
                    "code": None,
                },
            ),
            id="openai-body-message",
        ),
        pytest.param(
            APIStatusError(
                "Error code: 400",
                400,
                body={"type": "error", "error": {"code": "context_length_exceeded"}},
            ),
            id="anthropic-body-code",
        ),
        pytest.param(
            APIStatusError(
                "Error code: 400",
                400,
                body={"type": "error", "error": {"type": "context_length_exceeded"}},
            ),
            id="anthropic-body-type",
        ),
        pytest.param(
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
            id="anthropic-body-message",
        ),
        pytest.param(
            APIStatusError("input is too long for requested model", 413), id="413-message"
        ),
    ],
)
def test_a_context_overflow_is_read_from_code_type_or_body_as_each_client_reports_it(
    error: Exception,
) -> None:
    assert judge(error, context_overflow=["long_context"]) == ErrorClass.reroute(["long_context"])
    assert judge(error) == ErrorClass.ignore()


@pytest.mark.parametrize(
    "error",
    [
        status(400, message="messages: field required"),
        APIStatusError(
            "Error code: 400",
            400,
            code="invalid_request_error",
            body={"type": "error", "error": {"type": "invalid_request_error", "message": GENERIC}},
        ),
        httpx_error(400),
    ],
    ids=["message", "body", "httpx"],
)
def test_an_ordinary_bad_request_is_not_mistaken_for_an_overflow(error: Exception) -> None:
    assert judge(error, context_overflow=["long_context"]) == ErrorClass.ignore()


def test_an_overflow_worded_server_error_is_still_the_servers_failure() -> None:
    error = status(500, message="context window manager crashed")
    assert judge(error, context_overflow=["long_context"]) == ErrorClass.failure()


# -- the HTTP classifier: its settings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"context_overflow": "long_context"},
            TypeError,
            r"^context_overflow: expected an iterable of strings, got a bare string 'long_context'",
        ),
        ({"context_overflow": []}, ValueError, r"^context_overflow: name at least one capability"),
        (
            {"max_retry_after": -1},
            ValueError,
            exactly("max_retry_after: must be a finite number >= 0, got -1"),
        ),
        (
            {"max_retry_after": "60"},
            TypeError,
            exactly("max_retry_after: expected a number of seconds, got str"),
        ),
    ],
    ids=["bare-string", "empty", "negative", "str"],
)
def test_the_http_classifier_refuses_bad_settings(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        http_classifier(**options)
