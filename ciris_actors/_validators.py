"""Argument checks shared by every public entry point, with one message style:
``"<field>: expected <what>, got <what was given>"`` for a wrong type (``TypeError``) and
``"<field>: must be <rule>, got <value>"`` for a wrong value (``ValueError``).

Each check is a plain function returning the checked value; :func:`attrs_check` turns one
into an attrs field validator. Pure: imports neither trio nor the actors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["attrs_check", "count", "number", "seconds"]


def number(value: object, field: str) -> float:
    """Return *value*, an int or a float (not a bool), as a float.

    Raises:
      TypeError: *value* is not a number.
      ValueError: *value* is an int too large for a float (about 10**308), which could
        otherwise escape as an ``OverflowError`` from deep inside arithmetic.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field}: expected a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        message = f"{field}: must be a finite number, got an int too large for one"
        raise ValueError(message) from None


def seconds(
    value: object,
    field: str,
    *,
    minimum: float = 0.0,
    inclusive: bool = False,
    infinite: bool = False,
) -> float:
    """Return *value* as a number of seconds above *minimum* (at or above it when
    *inclusive*), finite unless *infinite* is allowed.

    With *infinite*, an int too large for a float means "forever" (``math.inf``).

    Raises:
      TypeError: *value* is not a number.
      ValueError: *value* is NaN, infinite (unless allowed), or not above the minimum.
    """
    if infinite and isinstance(value, int) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:
            return math.inf
    else:
        result = number(value, field)
    if math.isnan(result) or (math.isinf(result) and not infinite):
        raise ValueError(f"{field}: must be a finite number, got {value!r}")
    if result < minimum or (result == minimum and not inclusive):
        rule = ">=" if inclusive else ">"
        raise ValueError(f"{field}: must be {rule} {minimum:g}, got {value!r}")
    return result


def count(value: object, field: str, *, minimum: int = 1) -> int:
    """Return *value* as an int of at least *minimum* (a bool is not an int here).

    Raises:
      TypeError: *value* is not an int.
      ValueError: *value* is below *minimum*.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{field}: must be >= {minimum}, got {value}")
    return value


def attrs_check(check: Callable[..., Any], **options: Any) -> Callable[[Any, Any, Any], None]:
    """An attrs field validator running ``check(value, field_name, **options)``."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(value, attribute.name, **options)

    return validate
