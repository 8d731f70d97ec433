"""What an error from a provider means: :class:`ErrorClass`, classifiers, and a ready
classifier for HTTP-shaped errors (:data:`classify_http`).

An exception from a provider is not always the provider's fault. A *classifier*,
``classify(error) -> ErrorClass | None``, says what one means; ``None`` means "no
opinion" (the next classifier is asked; when none has one, the error is a ``failure``).
Classifiers are given to ``open_registry(classify=...)`` and ``register(...,
classify=...)`` (the provider's is asked first), and to :class:`~ciris_actors.Guard`.

Pure: no trio, no I/O. The HTTP classifier reads the wall clock only to turn a
``Retry-After`` given as an HTTP date into seconds, through a clock it is given.
"""

from __future__ import annotations

import email.utils
import enum
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ._types import coerce_capabilities

__all__ = [
    "Classifier",
    "ErrorClass",
    "ErrorKind",
    "classify",
    "classify_http",
    "http_classifier",
]


class ErrorKind(enum.Enum):
    """What an error means for the provider that raised it (values are the lower-case
    names)."""

    #: The provider failed: counts toward its breaker; ``call`` fails over.
    FAILURE = "failure"
    #: The caller's fault (a bad request): no outcome recorded, the permit returned;
    #: ``call`` re-raises at once.
    IGNORE = "ignore"
    #: The provider worked (a "not found", say): a success; the error still reaches the
    #: caller.
    SUCCESS = "success"
    #: Rate limited: a failure that opens the breaker at once, until at least
    #: ``retry_after`` seconds from now; ``call`` fails over.
    RATE_LIMITED = "rate_limited"
    #: A credential or configuration error: the provider leaves routing until reset,
    #: reconfigured or registered again; ``call`` fails over.
    DISABLE = "disable"
    #: Not the provider's fault, but the request needs more: no outcome recorded;
    #: ``call`` goes on with providers that also have the capabilities in ``require``.
    REROUTE = "reroute"


@attrs.frozen
class ErrorClass:
    """What one error means. Build one with the class methods.

    Attributes:
      kind: what it means.
      retry_after: for ``rate_limited``: seconds from now before the provider may be
        asked again (``None``: the breaker's own open duration).
      reason: for ``disable``: why, in words.
      require: for ``reroute``: the capabilities the rest of the call needs.
    """

    kind: ErrorKind
    retry_after: float | None = None
    reason: str = ""
    require: frozenset[str] = frozenset()

    @classmethod
    def failure(cls) -> ErrorClass:
        """The provider failed (the default for any error)."""
        return _FAILURE

    @classmethod
    def ignore(cls) -> ErrorClass:
        """The caller's fault: recorded as neither success nor failure."""
        return _IGNORE

    @classmethod
    def success(cls) -> ErrorClass:
        """The provider worked although it raised."""
        return _SUCCESS

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> ErrorClass:
        """Rate limited: open the breaker until at least *retry_after* seconds from now.

        Raises:
          TypeError, ValueError: *retry_after* is not a finite number >= 0.
        """
        if retry_after is not None:
            retry_after = _seconds(retry_after, "retry_after")
        return cls(ErrorKind.RATE_LIMITED, retry_after=retry_after)

    @classmethod
    def disable(cls, reason: str) -> ErrorClass:
        """Take the provider out of routing until it is reset or registered again.

        Raises:
          TypeError, ValueError: *reason* is not a non-empty string.
        """
        if not isinstance(reason, str):
            raise TypeError(f"reason: expected a string, got {type(reason).__name__}")
        if not reason.strip():
            raise ValueError("reason: must say why (got an empty string)")
        return cls(ErrorKind.DISABLE, reason=reason)

    @classmethod
    def reroute(cls, require: Iterable[str]) -> ErrorClass:
        """The request needs a provider that also has the capabilities in *require*.

        Raises:
          TypeError, ValueError: *require* is not a non-empty list of strings.
        """
        needed = coerce_capabilities(require, "require")
        if not needed:
            raise ValueError("require: name at least one capability the request needs")
        return cls(ErrorKind.REROUTE, require=needed)

    def __str__(self) -> str:
        if self.kind is ErrorKind.RATE_LIMITED and self.retry_after is not None:
            return f"rate_limited (retry after {self.retry_after:g} s)"
        if self.kind is ErrorKind.DISABLE:
            return f"disable ({self.reason})"
        if self.kind is ErrorKind.REROUTE:
            return f"reroute (needs {', '.join(sorted(self.require))})"
        return str(self.kind.value)


_FAILURE = ErrorClass(ErrorKind.FAILURE)
_IGNORE = ErrorClass(ErrorKind.IGNORE)
_SUCCESS = ErrorClass(ErrorKind.SUCCESS)

#: ``classify(error) -> ErrorClass | None``: what *error* means (``None``: no opinion).
Classifier = Callable[[BaseException], "ErrorClass | None"]


def classify(error: BaseException, *classifiers: Classifier | None) -> ErrorClass:
    """What *error* means, asking each classifier in turn (``None`` entries skipped).

    The first answer that is not ``None`` wins; with none, the error is a failure. A
    classifier that raises, or returns something that is not an :class:`ErrorClass` or
    ``None``, is a bug in the caller's code: the error counts as a failure and a note on
    *error* says what the classifier did.
    """
    for classifier in classifiers:
        if classifier is None:
            continue
        try:
            verdict = classifier(error)
        except Exception as bug:
            error.add_note(
                f"ciris_actors: the classifier {_name(classifier)} raised"
                f" {type(bug).__name__}: {bug}; the error counted as a failure"
            )
            return _FAILURE
        if verdict is None:
            continue
        if isinstance(verdict, ErrorClass):
            return verdict
        error.add_note(
            f"ciris_actors: the classifier {_name(classifier)} returned {verdict!r}, not an"
            " ErrorClass or None; the error counted as a failure"
        )
        return _FAILURE
    return _FAILURE


def _name(classifier: object) -> str:
    name = getattr(classifier, "__qualname__", None)
    return name if isinstance(name, str) else repr(classifier)


def _seconds(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field}: expected a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"{field}: must be finite, got an int too large for a float") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{field}: must be a finite number >= 0, got {value!r}")
    return seconds


# -- HTTP-shaped errors -----------------------------------------------------------------------

#: Words in an error's code, type or message that mean the prompt did not fit the model's
#: context window (OpenAI's ``context_length_exceeded``, Anthropic's "prompt is too long",
#: and the wordings of other OpenAI-compatible servers).
CONTEXT_OVERFLOW_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "context length",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "exceeds the context",
)
#: Statuses that mean "busy, come back later" when they carry a Retry-After.
_BUSY = frozenset({503, 529})


def http_classifier(
    *,
    context_overflow: Iterable[str] | None = None,
    max_retry_after: float = 3600.0,
    clock: Callable[[], float] = time.time,
) -> Classifier:
    """A classifier for HTTP-shaped errors, duck-typed on what httpx, the openai and
    anthropic clients and aiohttp expose (no client library is imported).

    It reads the status from the error's ``status_code`` or ``status``, or its
    ``response``'s; the ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``
    header from ``response.headers`` or ``headers``. Then:

    * 429, and 503 or 529 with a Retry-After: ``rate_limited(retry_after)``;
    * 401 and 403: ``disable`` (a revoked key does not come back by itself);
    * a context-window overflow (a 4xx whose code or message says so):
      ``reroute(require=context_overflow)`` when *context_overflow* is given, else
      ``ignore``;
    * 408 and every 5xx: ``failure``; every other 4xx: ``ignore`` (the request was bad);
    * no status, and a timeout or connection error (by type name, or the built-in
      ``TimeoutError``/``ConnectionError``): ``failure``;
    * anything else: ``None`` (no opinion).

    Args:
      context_overflow: the capabilities a request that overflowed a context window
        needs (``("long_context",)``, say); ``None``: treat the overflow as a bad request.
      max_retry_after: the longest Retry-After believed, in seconds (a longer one is cut
        to it: a server's typo must not lock a provider out for a year).
      clock: the wall clock in seconds since the epoch, for a Retry-After given as a date.

    Raises:
      TypeError, ValueError: bad *context_overflow* or *max_retry_after*.
    """
    overflow = _IGNORE
    if context_overflow is not None:
        try:
            overflow = ErrorClass.reroute(context_overflow)
        except (TypeError, ValueError) as exc:
            # Name the caller's argument, not reroute's.
            raise type(exc)(f"context_overflow{str(exc).removeprefix('require')}") from None
    limit = _seconds(max_retry_after, "max_retry_after")

    def classify_http_error(error: BaseException) -> ErrorClass | None:
        status = _status(error)
        if status is None:
            return _FAILURE if _transport_error(error) else None
        if status == 429:
            return ErrorClass.rate_limited(_retry_after(error, limit, clock))
        if status in _BUSY:
            wait = _retry_after(error, limit, clock)
            return _FAILURE if wait is None else ErrorClass.rate_limited(wait)
        if status in (401, 403):
            return ErrorClass.disable(f"HTTP {status}: {_summary(error)}")
        if status == 408 or status >= 500:
            return _FAILURE
        if status >= 400:
            return overflow if _context_overflow(error) else _IGNORE
        return None

    return classify_http_error


def _status(error: BaseException) -> int | None:
    """The HTTP status on *error*, or else on its ``response`` (``status_code``, then
    ``status``); None when neither has an int from 100 to 599 (aiohttp's 0 is no status,
    and so is a bool)."""
    holder: object = error
    while holder is not None:
        for attribute in ("status_code", "status"):
            value = getattr(holder, attribute, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
        # The response is looked up only when the error itself has no status: a failed
        # attribute lookup costs more than the rest of the classifier.
        holder = getattr(holder, "response", None) if holder is error else None
    return None


def _header(error: BaseException, name: str) -> str | None:
    """The header *name* (lower case) of *error*'s ``response``, or else of *error*."""
    for holder in (getattr(error, "response", None), error):
        value = _lookup(getattr(holder, "headers", None), name)
        if value is not None:
            return value
    return None


def _lookup(headers: Any, name: str) -> str | None:
    """The string value of header *name* (lower case) in *headers*: a mapping (httpx's,
    requests' or a dict), searched without regard to case, or else anything
    with a ``get`` (as the ``email.message.Message`` of urllib), asked for *name*. None
    when it is missing or not a string, or when reading *headers* raises (no headers at
    all, say)."""
    try:
        if isinstance(headers, Mapping):
            found = [value for key, value in headers.items() if str(key).lower() == name]
        else:
            found = [headers.get(name)]
    except Exception:
        return None
    return next((value for value in found if isinstance(value, str)), None)


def _retry_after(error: BaseException, limit: float, clock: Callable[[], float]) -> float | None:
    """Seconds the server asked to wait, if it said (cut to *limit*, never negative)."""
    milliseconds = _header(error, "retry-after-ms")
    if milliseconds is not None:
        seconds = _number(milliseconds)
        if seconds is not None:
            return min(limit, max(0.0, seconds / 1000.0))
    text = _header(error, "retry-after")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(text.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT
            return None
        seconds = when.timestamp() - clock()
    return min(limit, max(0.0, seconds))


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _context_overflow(error: BaseException) -> bool:
    """Whether a marker is in *error*'s message, ``code`` or ``type``, or in the ``code``,
    ``type`` or ``message`` of its ``body`` (openai's: the error object; anthropic's: the
    whole JSON, with the error object under ``"error"``)."""
    texts = [error, getattr(error, "code", None), getattr(error, "type", None)]
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        body = body.get("error", body)
    if isinstance(body, Mapping):
        texts += [body.get("code"), body.get("type"), body.get("message")]
    return any(marker in str(text).lower() for text in texts for marker in CONTEXT_OVERFLOW_MARKERS)


def _transport_error(error: BaseException) -> bool:
    """Whether the name of *error*'s class, or of a class it derives from, has "Timeout"
    or "Connect" in it (so the built-in ``TimeoutError`` and ``ConnectionError`` too)."""
    return any(
        "Timeout" in cls.__name__ or "Connect" in cls.__name__ for cls in type(error).__mro__
    )


def _summary(error: BaseException) -> str:
    """The first line of *error*'s message, cut to 120 characters; its type's name when
    the message is blank."""
    lines = str(error).strip().splitlines()
    return lines[0][:120] if lines else type(error).__name__


#: The HTTP classifier with its defaults, ready to pass: ``open_registry(
#: classify=classify_http)``. A context overflow is ignored (a bad request); build one
#: with :func:`http_classifier` to reroute it instead.
classify_http: Classifier = http_classifier()
