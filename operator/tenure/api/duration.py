"""The duration syntax used by every retention window.

``<n>d<n>h<n>m<n>s``, each part optional but in that order, at least one
present; a day is exactly 24 hours. The same regular expression and bounds are
rendered into the CRDs as CEL rules, so the API server rejects exactly what
:func:`parse_duration` rejects, with a sentence rather than a regex. Every
accepted value is at most ``MAX_DURATION``, whose canonical text
(:func:`format_duration`) the same rules accept again: what Tenure writes to
status always passes the schema it was read under.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# Digit counts are bounded so no value can overflow an int64 in CEL.
_DIGITS = {"d": 5, "h": 6, "m": 8, "s": 9}
PATTERN = "^" + "".join(f"(?:([0-9]{{1,{_DIGITS[u]}}}){u})?" for u, _ in _UNITS) + "$"
_REGEX = re.compile(PATTERN)
MAX_LENGTH = 32
MAX_DURATION = timedelta(days=36500)
"""The longest window (100 years); its canonical text fits the pattern (at most 5 digits of days)."""
MAX_BOUNDED = timedelta(days=365)


def parse_duration(text: str) -> timedelta:
    """Parse ``"1d12h"``-style text; raise ValueError naming the syntax otherwise."""
    match = _REGEX.match(text) if isinstance(text, str) else None
    if not text or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use one or more of <n>d, <n>h, <n>m, <n>s in that order, "
            "e.g. 30d, 36h, 1d12h, 90s"
        )
    seconds = sum(int(part) * size for part, (_, size) in zip(match.groups(), _UNITS, strict=True) if part)
    value = timedelta(seconds=seconds)
    if value > MAX_DURATION:
        raise ValueError(f"{text} is above the {format_duration(MAX_DURATION)} maximum")
    return value


def format_duration(value: timedelta) -> str:
    """The shortest canonical text for a whole-second duration (``0s`` for zero)."""
    remaining = int(value.total_seconds())
    parts = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _cel_seconds() -> str:
    terms = [
        f"(self.find('[0-9]+{u}') == '' ? 0 : int(self.find('[0-9]+{u}').replace('{u}', '')) * {size})"
        for u, size in _UNITS
    ]
    return " + ".join(terms)


def _parse(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _schema(bounded: bool) -> dict[str, Any]:
    # CEL rather than an OpenAPI pattern, so a bad value gets a sentence, not a regular expression.
    syntax = f"self.matches('{PATTERN}')"
    most = MAX_BOUNDED if bounded else MAX_DURATION
    rules = [
        {
            "rule": syntax,
            "message": "must be a duration such as 30d, 36h, 1d12h or 90s (units d, h, m, s in that order)",
        },
        {
            "rule": f"!{syntax} || {_cel_seconds()} <= {int(most.total_seconds())}",
            "message": f"must be between 0d and {format_duration(most)}",
        },
    ]
    return {"type": "string", "minLength": 2, "maxLength": MAX_LENGTH, "x-kubernetes-validations": rules}


def _check_bound(value: timedelta) -> timedelta:
    if value > MAX_BOUNDED:
        raise ValueError(f"{format_duration(value)} is above the 365d maximum")
    return value


_serialize = PlainSerializer(format_duration, return_type=str)

Duration = Annotated[timedelta, BeforeValidator(_parse), _serialize, WithJsonSchema(_schema(bounded=False))]
"""A retention window such as ``30d`` or ``1d12h``."""

BoundedDuration = Annotated[
    timedelta,
    BeforeValidator(_check_bound),
    BeforeValidator(_parse),
    _serialize,
    WithJsonSchema(_schema(bounded=True)),
]
"""A window between ``0d`` and ``365d`` (active-data retention)."""
