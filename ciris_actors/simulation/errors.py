"""What a simulated provider raises: :class:`SimulatedError`, shaped like the errors of an
HTTP client (httpx, the openai and anthropic clients), so a registry classifies it as it
would a real client's error (``classify_http``, ``http_classifier``).

A failure with no HTTP answer (an outage, an error burst, a crash) has no status; a
refusal by a class fault (``rate_limit``, ``bad_credentials``, ``context_overflow``) has
one, and the headers, code and message a real server would send.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["SimulatedError", "SimulatedResponse"]


@attrs.frozen
class SimulatedResponse:
    """The HTTP response a refused call got (``error.response``, as httpx has it).

    Attributes:
      status_code: the HTTP status.
      headers: the response headers, names in lower case.
    """

    status_code: int
    headers: Mapping[str, str] = attrs.field(factory=dict)


class SimulatedError(RuntimeError):
    """A simulated provider failed a call (or crashed).

    Args:
      message: what happened.
      status_code: the HTTP status of the refusal; ``None`` (the default) for a failure
        with no HTTP answer.
      headers: the response's headers (``Retry-After``, say), names in lower case.
      code: the error's code as an API's error body gives it
        (``"context_length_exceeded"``), if any.

    Attributes:
      status_code: as given.
      headers: as given (empty when none were).
      response: a :class:`SimulatedResponse` with the status and headers, or ``None``
        with no status.
      code: as given.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers: Mapping[str, str] = dict(headers or {})
        self.response = (
            None if status_code is None else SimulatedResponse(status_code, self.headers)
        )
        self.code = code
