"""``serve --fleet URL``: the store's URL checked before anything starts, shown without its
password, and the :class:`~ciris_actors.fleet.RedisFleet` link made from it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

import attrs

from ..fleet import FleetLink
from ._extras import available
from ._usage import UsageError

__all__ = ["FleetOptions", "fleet_options", "redact_url"]

#: The URL schemes ``--fleet`` takes: Redis or Valkey, plain or over TLS.
SCHEMES = ("redis", "rediss")
REDIS_HINT = "--fleet needs the redis extra: pip install 'ciris-actors[redis]'"
_URL_FORM = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (or rediss:// for TLS)"
#: What stands for a password in everything printed.
HIDDEN = "***"
_PASSWORD_QUERY = re.compile(r"(^|&)(password=)[^&]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """*url* with its password (``:PASSWORD@``, or a ``password=`` query parameter)
    replaced by ``***``; a user name alone before ``@`` is taken for a password too, as
    people write ``redis://PASSWORD@host``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{HIDDEN}@{hostport}" if colon else f"{HIDDEN}@{hostport}"
    query = _PASSWORD_QUERY.sub(rf"\1\2{HIDDEN}", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # as written: geturl() would drop the // of an empty host
    return parts._replace(netloc=netloc, query=query).geturl()


def _secrets(parts: SplitResult) -> list[str]:
    """The secrets in a URL as they may appear in an error message: decoded and as
    written (a user name alone counts, as :func:`redact_url` says)."""
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    _, colon, password = userinfo.partition(":")
    secret = password if colon else userinfo
    if secret:
        found += [secret, quote(secret, safe=""), parts.password or ""]
    for match in re.finditer(r"(?:^|&)password=([^&]*)", parts.query, re.IGNORECASE):
        found.append(match.group(1))
    return sorted({s for s in found if s}, key=len, reverse=True)


@attrs.frozen
class FleetOptions:
    """The fleet ``serve`` joins.

    Attributes:
      url: the store's URL, password and all: only ever handed to the link.
      shown: the URL without its password, for output.
      node: this node's id (``None``: :class:`~ciris_actors.fleet.RedisFleet` picks one).
      quorum: distinct nodes whose ordinary opens make an open fleet-wide.
      factory: makes the link (``RedisFleet``).
    """

    url: str = attrs.field(repr=False)
    shown: str
    node: str | None
    quorum: int
    factory: Callable[..., Any] = attrs.field(repr=False)

    def scrub(self, text: str) -> str:
        """*text* with any secret of the URL replaced by ``***`` (for error messages of
        the client library, which may quote the URL)."""
        text = text.replace(self.url, self.shown)
        for secret in _secrets(urlsplit(self.url)):
            text = text.replace(secret, HIDDEN)
        return text

    def link(self) -> FleetLink:
        """Make the fleet link; inside the trio run, where the client's primitives live.

        Raises:
          ValueError: the link refused an argument (the message scrubbed of secrets).
        """
        try:
            link: FleetLink = self.factory(self.url, node=self.node, quorum=self.quorum)
        except (TypeError, ValueError) as exc:
            raise ValueError(self.scrub(f"--fleet {self.shown}: {exc}")) from None
        return link


def fleet_options(
    prog: str, url: str | None, node: str | None, quorum: int | None
) -> FleetOptions | None:
    """Check ``--fleet``, ``--fleet-node`` and ``--fleet-quorum`` before anything starts.

    Returns:
      What to join, or ``None`` without ``--fleet``.

    Raises:
      UsageError: a bad URL (named without its password), a fleet option without
        ``--fleet``, or the ``redis`` extra missing.
    """
    if url is None:
        flags = (("--fleet-node", node), ("--fleet-quorum", quorum))
        given = [flag for flag, value in flags if value is not None]
        if given:
            raise UsageError(prog, f"{' and '.join(given)}: only with --fleet URL")
        return None
    shown = redact_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        raise UsageError(
            prog,
            f"--fleet {shown}: a memory fleet lives inside one process; serve processes"
            " share state through Redis or Valkey: give a redis:// or rediss:// URL",
        )
    if scheme not in SCHEMES:
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise UsageError(prog, f"--fleet {shown}: expected {_URL_FORM}, got {got}")
    if not parts.hostname:
        raise UsageError(prog, f"--fleet {shown}: no host; expected {_URL_FORM}")
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise UsageError(
            prog, f"--fleet {shown}: the port must be a number 0..65535; expected {_URL_FORM}"
        ) from None
    if parts.path not in ("", "/") and not re.fullmatch(r"/\d+", parts.path):
        raise UsageError(
            prog, f"--fleet {shown}: the path must be a database number (/0); expected {_URL_FORM}"
        )
    if node is not None and not node.strip():
        raise UsageError(prog, "--fleet-node: must not be empty")
    return FleetOptions(
        url=url,
        shown=shown,
        node=node,
        quorum=1 if quorum is None else quorum,
        factory=_redis_fleet(prog),
    )


def _redis_fleet(prog: str) -> Callable[..., Any]:
    """``RedisFleet``, imported now that it is needed.

    Raises:
      UsageError: the ``redis`` extra (coredis) is not installed.
    """
    if not available("coredis"):
        raise UsageError(prog, REDIS_HINT)
    try:
        from ..fleet import RedisFleet
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "coredis":
            raise UsageError(prog, REDIS_HINT) from None
        raise UsageError(prog, f"--fleet: cannot load RedisFleet: {exc}") from None
    factory: Callable[..., Any] = RedisFleet
    return factory
